package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// qmpExecute connects to the QMP socket at path, leaves capabilities
// negotiation mode and runs one argument-less command, such as
// system_powerdown. While QEMU is still starting the socket may not exist
// yet: it retries until ctx ends or gone (QEMU's exit) is closed.
func qmpExecute(ctx context.Context, path, command string, gone <-chan struct{}) (err error) {
	conn, err := dialQMP(ctx, path, gone)
	if err != nil {
		return err
	}
	defer conn.Close()
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("qmp %s: %w", command, ctx.Err())
		}
	}()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	dec := json.NewDecoder(conn)
	var greeting struct {
		QMP json.RawMessage `json:"QMP"`
	}
	if err := dec.Decode(&greeting); err != nil {
		return fmt.Errorf("qmp: read greeting: %w", err)
	}
	if greeting.QMP == nil {
		return errors.New("qmp: no greeting from QEMU")
	}
	for _, cmd := range []string{"qmp_capabilities", command} {
		req, _ := json.Marshal(map[string]string{"execute": cmd})
		if _, err := conn.Write(append(req, '\n')); err != nil {
			return fmt.Errorf("qmp %s: %w", cmd, err)
		}
		if err := qmpResult(dec); err != nil {
			return fmt.Errorf("qmp %s: %w", cmd, err)
		}
	}
	return nil
}

// qmpResult reads messages until a command's reply, skipping events.
func qmpResult(dec *json.Decoder) error {
	for {
		var msg struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
		}
		if err := dec.Decode(&msg); err != nil {
			return err
		}
		switch {
		case msg.Error != nil:
			return fmt.Errorf("%s: %s", msg.Error.Class, msg.Error.Desc)
		case msg.Return != nil:
			return nil
		}
	}
}

// dialQMP connects to the QMP socket, waiting for QEMU to create it.
func dialQMP(ctx context.Context, path string, gone <-chan struct{}) (net.Conn, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			return conn, nil
		}
		if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("qmp: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("qmp: connect %s: %w", path, ctx.Err())
		case <-gone:
			return nil, fmt.Errorf("qmp: qemu exited")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
