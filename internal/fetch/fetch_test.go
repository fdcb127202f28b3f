package fetch

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func blob(t *testing.T, n int) ([]byte, string) {
	b := make([]byte, n)
	rand.Read(b)
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// server serves data at /img.qcow2 with Range support; cutAfter > 0 makes
// the first full-body response stop after that many bytes.
func server(t *testing.T, data []byte, cutAfter int, ranges *[]string) *httptest.Server {
	var cut atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ranges != nil {
			*ranges = append(*ranges, r.Header.Get("Range"))
		}
		if cutAfter > 0 && r.Header.Get("Range") == "" && cut.CompareAndSwap(false, true) {
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.WriteHeader(200)
			w.Write(data[:cutAfter])
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		http.ServeContent(w, r, "img.qcow2", time.Unix(0, 0), bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFetchAndCache(t *testing.T) {
	data, sum := blob(t, 300_000)
	srv := server(t, data, 0, nil)
	f := &Fetcher{Dir: t.TempDir()}
	res, err := f.Fetch(context.Background(), Request{URL: srv.URL + "/img.qcow2", SHA256: sum})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(res.Path); !bytes.Equal(got, data) || res.Cached {
		t.Fatalf("downloaded file wrong: cached=%v", res.Cached)
	}
	again, err := f.Fetch(context.Background(), Request{URL: srv.URL + "/img.qcow2", SHA256: strings.ToUpper(sum)})
	if err != nil || !again.Cached || again.Path != res.Path {
		t.Fatalf("second fetch not from the cache: %+v %v", again, err)
	}
}

func TestFetchChecksumMismatch(t *testing.T) {
	data, _ := blob(t, 50_000)
	_, other := blob(t, 10)
	srv := server(t, data, 0, nil)
	dir := t.TempDir()
	f := &Fetcher{Dir: dir}
	_, err := f.Fetch(context.Background(), Request{URL: srv.URL + "/img.qcow2", SHA256: other})
	var ce *ChecksumError
	if !errors.As(err, &ce) || ce.Want != other {
		t.Fatalf("want a checksum error, got %v", err)
	}
	for _, sub := range []string{"sha256", "partial"} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".lock") {
				t.Errorf("%s/%s left after a mismatch", sub, e.Name())
			}
		}
	}
}

func TestFetchResumes(t *testing.T) {
	data, sum := blob(t, 1<<20)
	var ranges []string
	srv := server(t, data, 300_000, &ranges)
	f := &Fetcher{Dir: t.TempDir()}
	req := Request{URL: srv.URL + "/img.qcow2", SHA256: sum}
	if _, err := f.Fetch(context.Background(), req); err == nil || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("cut download: want an error saying it can resume, got %v", err)
	}
	res, err := f.Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || ranges[len(ranges)-1] != "bytes=300000-" {
		t.Fatalf("not resumed with a Range request: %+v %v", res, ranges)
	}
	if got, _ := os.ReadFile(res.Path); !bytes.Equal(got, data) {
		t.Fatal("resumed file differs")
	}
}

func TestFetchWithoutRangeSupportStartsOver(t *testing.T) {
	data, sum := blob(t, 200_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) }))
	defer srv.Close()
	dir := t.TempDir()
	f := &Fetcher{Dir: dir}
	key := sha256.Sum256([]byte(srv.URL + "/x"))
	os.MkdirAll(filepath.Join(dir, "partial"), 0o755)
	os.WriteFile(filepath.Join(dir, "partial", hex.EncodeToString(key[:16])+".part"), []byte("garbage"), 0o644)
	res, err := f.Fetch(context.Background(), Request{URL: srv.URL + "/x", SHA256: sum})
	if err != nil || res.Resumed {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestFetchSums(t *testing.T) {
	data, sum := blob(t, 10_000)
	mux := http.NewServeMux()
	mux.HandleFunc("/img.qcow2", func(w http.ResponseWriter, r *http.Request) { w.Write(data) })
	mux.HandleFunc("/SHA256SUMS", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s  other.qcow2\n%s *img.qcow2\n", strings.Repeat("0", 64), sum)
	})
	mux.HandleFunc("/BSD", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "SHA256 (img.qcow2) = %s\n", strings.ToUpper(sum))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, sums := range []string{"/SHA256SUMS", "/BSD"} {
		f := &Fetcher{Dir: t.TempDir()}
		res, err := f.Fetch(context.Background(), Request{URL: srv.URL + "/img.qcow2", SumsURL: srv.URL + sums})
		if err != nil || res.SHA256 != sum {
			t.Fatalf("%s: %+v %v", sums, res, err)
		}
	}
	f := &Fetcher{Dir: t.TempDir()}
	if _, err := f.Fetch(context.Background(), Request{URL: srv.URL + "/missing.qcow2", SumsURL: srv.URL + "/SHA256SUMS"}); err == nil || !strings.Contains(err.Error(), "lists no sha256 for missing.qcow2") {
		t.Fatalf("%v", err)
	}
}

func TestFetchNeedsDigest(t *testing.T) {
	f := &Fetcher{Dir: t.TempDir()}
	if _, err := f.Fetch(context.Background(), Request{URL: "http://127.0.0.1:1/x"}); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("%v", err)
	}
}
