// Package ctxio makes blocking reads stop when a context ends: a copy from
// a stalled network or a slow disk returns the context's error at the next
// read instead of running on after Ctrl-C.
package ctxio

import (
	"context"
	"io"
)

// Reader returns r, reading only while ctx has not ended.
func Reader(ctx context.Context, r io.Reader) io.Reader { return reader{ctx, r} }

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
