// Package guestssh is kiln's channel into a guest it is testing or
// configuring: an SSH connection through a forwarded port, authenticated
// with an ephemeral key that lives only in memory and in that guest's seed
// (kiln test), or with a key the deploy controller keeps in its private
// state directory for the balancer VMs it runs (LoadOrMakeKey).
package guestssh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kiln-project/kiln/internal/atomicfile"
)

// Key is an ephemeral ed25519 key pair.
type Key struct {
	signer ssh.Signer
	// AuthorizedKey is the public key in authorized_keys form.
	AuthorizedKey string
}

// NewKey makes a fresh key. The private half is never written anywhere.
func NewKey() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return keyOf(priv, "kiln-test")
}

// LoadOrMakeKey reads the key kept at path (OpenSSH format), or makes one
// and keeps it there, readable by its owner only and written whole (a
// temp file renamed): the deploy controller's key to the guests it
// configures, the same after it restarts.
func LoadOrMakeKey(path, comment string) (*Key, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		block, err := ssh.MarshalPrivateKey(priv, comment)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.Write(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return nil, err
		}
		return keyOf(priv, comment)
	}
	if err != nil {
		return nil, err
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (remove it: a new key is made, and the guests that knew the old one are made again)", path, err)
	}
	priv, ok := raw.(*ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ed25519 key (%T)", path, raw)
	}
	return keyOf(*priv, comment)
}

func keyOf(priv ed25519.PrivateKey, comment string) (*Key, error) {
	pub := priv.Public().(ed25519.PublicKey)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	authorized := string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(sshPub))) + " " + comment
	return &Key{signer: signer, AuthorizedKey: authorized}, nil
}

// Client is an SSH connection to a guest.
type Client struct {
	c *ssh.Client
}

// Dial connects to addr as user, retrying until ctx ends: the guest's sshd
// comes up only once cloud-init has created the user and host keys. alive,
// when set, is polled between attempts; an error from it (the VM died)
// ends the wait early.
func Dial(ctx context.Context, addr, user string, key *Key, alive func() error) (*Client, error) {
	cfg := &ssh.ClientConfig{
		User: user,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(key.signer)},
		// A fresh VM's host key is unknown by nature; the connection goes
		// over loopback to a VM this process started.
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         15 * time.Second,
	}
	var last error
	// Until the guest has answered once, an attempt that hears nothing
	// within bannerWait is dropped for a fresh one (see bannerWait).
	wait := bannerWait
	for {
		if alive != nil {
			if err := alive(); err != nil {
				return nil, err
			}
		}
		c, unheard, err := dialOnce(ctx, addr, cfg, wait)
		if err == nil {
			return &Client{c: c}, nil
		}
		if !unheard {
			// Refused, closed or answered: the guest's network is up, so a
			// slow banner from now on is a busy sshd, given all its time.
			wait = handshakeWait
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ssh %s@%s: %w (last attempt: %v)", user, addr, ctx.Err(), last)
		case <-time.After(2 * time.Second):
		}
	}
}

// bannerWait is how long a new connection may stay silent before the
// server's identification, while the guest has not answered yet. QEMU's
// user networking accepts a forwarded port on the host at once and only
// then connects to the guest: before the guest's network is up, that
// connection waits on TCP's growing SYN retransmissions, and a login
// started then could sit for most of handshakeWait after sshd listens (9 s
// seen on a network-role boot). A fresh attempt reaches sshd at once.
var bannerWait = 5 * time.Second

// handshakeWait bounds a whole handshake, banner to authentication.
const handshakeWait = 30 * time.Second

// dialOnce makes one connection and SSH handshake. unheard reports that it
// failed because the server sent nothing within silence: the attempt most
// likely never reached it.
func dialOnce(ctx context.Context, addr string, cfg *ssh.ClientConfig, silence time.Duration) (c *ssh.Client, unheard bool, err error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	bc := &bannerConn{Conn: conn}
	conn.SetDeadline(time.Now().Add(silence))
	sc, chans, reqs, err := ssh.NewClientConn(bc, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, !bc.heard && bc.timedOut, err
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), false, nil
}

// bannerConn moves the connection's deadline to handshakeWait once the
// server has sent its first bytes.
type bannerConn struct {
	net.Conn
	heard, timedOut bool
}

func (c *bannerConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.heard {
		c.heard = true
		c.Conn.SetDeadline(time.Now().Add(handshakeWait))
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.timedOut = true
	}
	return n, err
}

// Run runs a shell command and returns its combined output and exit code.
// err is set only when the command could not be run at all.
func (c *Client) Run(ctx context.Context, cmd string) (string, int, error) {
	return c.RunInput(ctx, cmd, nil)
}

// RunInput is Run with stdin.
func (c *Client) RunInput(ctx context.Context, cmd string, stdin []byte) (string, int, error) {
	s, err := c.c.NewSession()
	if err != nil {
		return "", -1, err
	}
	defer s.Close()
	if stdin != nil {
		s.Stdin = bytes.NewReader(stdin)
	}
	// One writer for both streams, locked and without ReadFrom: two
	// concurrent bytes.Buffer.ReadFrom calls on one buffer lose data.
	out := &lockedBuffer{}
	s.Stdout, s.Stderr = out, out
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case <-ctx.Done():
		s.Signal(ssh.SIGKILL)
		return out.String(), -1, ctx.Err()
	case err := <-done:
		var ee *ssh.ExitError
		if errors.As(err, &ee) {
			return out.String(), ee.ExitStatus(), nil
		}
		if err != nil {
			return out.String(), -1, err
		}
		return out.String(), 0, nil
	}
}

// RunRoot is RunInput of cmd as root, through sudo (the user's, without
// a password), in sh.
func (c *Client) RunRoot(ctx context.Context, cmd string, stdin []byte) (string, int, error) {
	return c.RunInput(ctx, "sudo -n sh -c '"+strings.ReplaceAll(cmd, "'", `'\''`)+"'", stdin)
}

// DialUnix connects to a unix socket in the guest, as the user logged in
// (OpenSSH's streamlocal forwarding), until ctx ends.
func (c *Client) DialUnix(ctx context.Context, path string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		conn, err := c.c.Dial("unix", path)
		done <- result{conn, err}
	}()
	select {
	case r := <-done:
		return r.conn, r.err
	case <-ctx.Done():
		go func() { // the channel may still open: close it then
			if r := <-done; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// Wait returns when the connection ends (the guest went away).
func (c *Client) Wait() error { return c.c.Wait() }

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
