package guestssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
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
