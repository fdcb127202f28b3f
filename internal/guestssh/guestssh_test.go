package guestssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// fakeServer is an in-process SSH server that accepts one key and answers
// "exec" requests: "echo X" prints X, "exit N" exits with N.
func fakeServer(t *testing.T, authorized string) string {
	t.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, _ := ssh.NewSignerFromKey(hostPriv)
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		if strings.HasPrefix(authorized, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))) {
			return nil, nil
		}
		return nil, fmt.Errorf("unknown key")
	}}
	cfg.AddHostKey(hostSigner)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				_, chans, reqs, err := ssh.NewServerConn(nc, cfg)
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				for ch := range chans {
					c, creqs, _ := ch.Accept()
					go func() {
						for r := range creqs {
							if r.Type != "exec" {
								r.Reply(false, nil)
								continue
							}
							r.Reply(true, nil)
							cmd := string(r.Payload[4:])
							status := 0
							switch {
							case strings.HasPrefix(cmd, "echo "):
								// stdout first, stderr closing later: the
								// case where two ReadFroms on one buffer
								// truncated the output.
								fmt.Fprintln(c, strings.TrimPrefix(cmd, "echo "))
								time.Sleep(50 * time.Millisecond)
							case strings.HasPrefix(cmd, "exit "):
								fmt.Sscan(strings.TrimPrefix(cmd, "exit "), &status)
								fmt.Fprintln(c.Stderr(), "bye")
							}
							b := make([]byte, 4)
							binary.BigEndian.PutUint32(b, uint32(status))
							c.SendRequest("exit-status", false, b)
							c.Close()
						}
					}()
				}
			}()
		}
	}()
	return l.Addr().String()
}

func TestRun(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key.AuthorizedKey, "ssh-ed25519 ") {
		t.Fatalf("authorized key %q", key.AuthorizedKey)
	}
	addr := fakeServer(t, key.AuthorizedKey)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr, "kiln-test", key, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out, code, err := c.Run(ctx, "echo hello")
	if err != nil || code != 0 || out != "hello\n" {
		t.Fatalf("echo: %q %d %v", out, code, err)
	}
	out, code, err = c.Run(ctx, "exit 3")
	if err != nil || code != 3 || out != "bye\n" {
		t.Fatalf("exit: %q %d %v", out, code, err)
	}
}

func TestDialWrongKeyTimesOut(t *testing.T) {
	good, _ := NewKey()
	bad, _ := NewKey()
	addr := fakeServer(t, good.AuthorizedKey)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := Dial(ctx, addr, "kiln-test", bad, nil); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestDialStopsWhenVMDies(t *testing.T) {
	key, _ := NewKey()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Dial(ctx, "127.0.0.1:1", "x", key, func() error { return fmt.Errorf("vm exited") })
	if err == nil || err.Error() != "vm exited" {
		t.Fatalf("%v", err)
	}
}

// front stands where QEMU's user networking does: it accepts every
// connection on the host at once, and handle decides what the n-th one
// (from 0) gets.
func front(t *testing.T, handle func(n int, c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for n := 0; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go handle(n, c)
		}
	}()
	return l.Addr().String()
}

// pipe joins c to the server at addr, the server's bytes after delay.
func pipe(c net.Conn, addr string, delay time.Duration) {
	s, err := net.Dial("tcp", addr)
	if err != nil {
		c.Close()
		return
	}
	go func() { io.Copy(s, c); s.Close() }()
	time.Sleep(delay)
	io.Copy(c, s)
	c.Close()
}

func withBannerWait(t *testing.T, d time.Duration) {
	was := bannerWait
	bannerWait = d
	t.Cleanup(func() { bannerWait = was })
}

// dialBehind dials fakeServer through front: first gets the first
// connection; the others reach the server, its bytes after delay. It
// returns what Dial did and how many connections it made.
func dialBehind(t *testing.T, first func(net.Conn), delay time.Duration) (*Client, int32, error) {
	t.Helper()
	withBannerWait(t, 300*time.Millisecond)
	key, _ := NewKey()
	server := fakeServer(t, key.AuthorizedKey)
	var conns atomic.Int32
	addr := front(t, func(n int, c net.Conn) {
		conns.Add(1)
		if n == 0 {
			first(c)
			return
		}
		pipe(c, server, delay)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr, "kiln-test", key, nil)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, conns.Load(), err
}

// A first connection that hears nothing (the guest's network is not up,
// the forward waits on SYN retries) is dropped for a fresh one that reaches
// sshd, long before the handshake's own 30 s limit.
func TestDialDropsASilentConnection(t *testing.T) {
	c, n, err := dialBehind(t, func(net.Conn) {}, 0) // silent, and held open
	if err != nil {
		t.Fatalf("dial behind a silent first connection: %v", err)
	}
	if out, code, err := c.Run(context.Background(), "echo up"); err != nil || code != 0 || out != "up\n" {
		t.Fatalf("echo: %q %d %v", out, code, err)
	}
	if n != 2 {
		t.Errorf("%d connections, want 2 (the silent one, then one that reached the server)", n)
	}
}

// Once the guest has answered (a connection closed before sshd listens),
// a server slow to send its banner is a busy guest: it gets its time, not
// a new connection every bannerWait that would never get through.
func TestDialWaitsForABusyServer(t *testing.T) {
	_, n, err := dialBehind(t, func(c net.Conn) { c.Close() }, time.Second) // refused: nothing listens yet
	if err != nil {
		t.Fatalf("dial to a slow server: %v (%d connections)", err, n)
	}
	if n != 2 {
		t.Errorf("%d connections, want 2 (the refused one, then one given time)", n)
	}
}
