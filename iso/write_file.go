package iso

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/kiln-project/kiln/internal/atomicfile"
)

// WriteFile writes the seed to path atomically (internal/atomicfile): it
// validates the input first, so invalid input leaves not even a temporary
// file; perm is set exactly, regardless of umask, before any byte is
// written. On any error path is left as it was: absent, or the previous
// file untouched.
func WriteFile(path string, perm os.FileMode, opts Options, entries []Entry) error {
	l, err := plan(opts, entries)
	if err != nil {
		return err
	}
	err = atomicfile.WriteFrom(path, perm.Perm(), func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 256<<10)
		ew := &errWriter{w: bw}
		l.writeTo(ew)
		if ew.err == nil {
			ew.err = bw.Flush()
		}
		if ew.err != nil {
			return ew.err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	return nil
}
