package image

import (
	"container/list"
	"errors"
	"io"
	"sync"
)

// cacheBudget bounds the memory of a chunkCache.
const cacheBudget = 8 << 20

// chunkCache keeps recently read qcow2 clusters, decoded, so that small
// reads inside a compressed cluster decompress it once, not once each.
type chunkCache struct {
	chunk int64
	max   int
	mu    sync.Mutex
	lru   *list.List // of *chunkEntry, most recent first
	index map[int64]*list.Element
}

type chunkEntry struct {
	off  int64
	data []byte
}

func newChunkCache(chunk int64) *chunkCache {
	return &chunkCache{
		chunk: chunk,
		max:   max(4, int(cacheBudget/chunk)),
		lru:   list.New(),
		index: map[int64]*list.Element{},
	}
}

// readAt fills p (which lies within size) from r, chunk by chunk. Whole
// chunks go straight to p without touching the cache, so long sequential
// reads do not evict the blocks a filesystem reader keeps coming back to.
func (c *chunkCache) readAt(r io.ReaderAt, size int64, p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		start := pos - pos%c.chunk
		end := min(start+c.chunk, size)
		want := p[n:min(len(p), n+int(end-pos))]
		if pos == start && int64(len(want)) == end-start {
			m, err := io.ReadFull(io.NewSectionReader(r, pos, int64(len(want))), want)
			n += m
			if err != nil {
				return n, err
			}
			continue
		}
		data, err := c.get(r, start, end)
		if err != nil {
			return n, err
		}
		n += copy(want, data[pos-start:])
	}
	return n, nil
}

func (c *chunkCache) get(r io.ReaderAt, start, end int64) ([]byte, error) {
	c.mu.Lock()
	if e, ok := c.index[start]; ok {
		c.lru.MoveToFront(e)
		data := e.Value.(*chunkEntry).data
		c.mu.Unlock()
		return data, nil
	}
	c.mu.Unlock()

	// Read without the lock: two readers may decode the same chunk, which
	// costs less than serialising every read.
	data := make([]byte, end-start)
	if _, err := io.ReadFull(io.NewSectionReader(r, start, end-start), data); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.index[start]; !ok {
		c.index[start] = c.lru.PushFront(&chunkEntry{off: start, data: data})
		for c.lru.Len() > c.max {
			old := c.lru.Remove(c.lru.Back()).(*chunkEntry)
			delete(c.index, old.off)
		}
	}
	return data, nil
}
