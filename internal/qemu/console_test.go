package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ovmfSample is the start of what OVMF's shell writes to the serial
// console (as captured from OVMF_CODE_4M.fd under QEMU 7.2).
const ovmfSample = "\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001 \"EFI Internal Shell\"\r\n" +
	"\x1b[2J\x1b[01;01H\x1b[01;01HUEFI Interactive Shell v2.2\r\nEDK II\r\n" +
	"\x1b[1m\x1b[33m\x1b[40mMapping table\x1b[0m\x1b[37m\x1b[40m\r\n" +
	"\x1b[04;01H\x1b[1m\x1b[37m\x1b[40mmap\x1b[0m\x1b[37m\x1b[40m: No mapping found.\r\n" +
	"\x1b]0;title\x07\x1b(Bdone\x00\x08\r\n"

const ovmfSampleText = "BdsDxe: loading Boot0001 \"EFI Internal Shell\"\n" +
	"UEFI Interactive Shell v2.2\nEDK II\n" +
	"Mapping table\n" +
	"map: No mapping found.\n" +
	"done\n"

func TestTermStripper(t *testing.T) {
	var s termStripper
	if got := string(s.strip(nil, []byte(ovmfSample))); got != ovmfSampleText {
		t.Errorf("strip =\n%q\nwant\n%q", got, ovmfSampleText)
	}
	// Fed one byte at a time, sequences split across calls strip the same.
	var s2 termStripper
	var out []byte
	for i := range len(ovmfSample) {
		out = s2.strip(out, []byte{ovmfSample[i]})
	}
	if string(out) != ovmfSampleText {
		t.Errorf("byte-wise strip =\n%q\nwant\n%q", out, ovmfSampleText)
	}
}

func TestConsoleWatcher(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	w := &consoleWatcher{path: path, want: []byte("map: No mapping")}
	defer w.close()
	if found, err := w.poll(); found || err != nil {
		t.Fatalf("missing log: poll = %v, %v; want false, nil", found, err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Append the sample in pieces that cut the wanted text and escape
	// sequences; the watcher must find it only once it is complete.
	i := strings.Index(ovmfSample, "map\x1b[0m") + 2
	for _, piece := range []string{ovmfSample[:i], ovmfSample[i : i+5], ovmfSample[i+5 : i+30]} {
		if _, err := f.WriteString(piece); err != nil {
			t.Fatal(err)
		}
		found, err := w.poll()
		if err != nil {
			t.Fatal(err)
		}
		if complete := strings.Contains(piece, "No mapping"); found != complete {
			t.Fatalf("after %q: found = %v", piece, found)
		}
		if !found && len(w.window) >= len(w.want) {
			t.Errorf("window kept %d bytes, want at most %d", len(w.window), len(w.want)-1)
		}
	}
}

func TestConsoleTail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "console.log")
	var b strings.Builder
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&b, "\x1b[1mline %d\x1b[0m  \r\n", i)
	}
	b.WriteString("\r\n\r\n")
	writeFile(t, path, b.String())
	if got, want := consoleTail(path, 3), "line 28\nline 29\nline 30"; got != want {
		t.Errorf("consoleTail(3) = %q, want %q", got, want)
	}
	if got := consoleTail(path, 100); !strings.HasPrefix(got, "line 1\n") || strings.Count(got, "\n") != 29 {
		t.Errorf("consoleTail(100) = %q", got)
	}
	if got := consoleTail(filepath.Join(dir, "missing"), 5); got != "" {
		t.Errorf("missing log: %q", got)
	}
	// A log larger than what ConsoleTail reads: the cut first line is dropped.
	big := strings.Repeat("x", consoleTailBytes) + "\ncut\nlast line\n"
	writeFile(t, path, big)
	if got := consoleTail(path, 2); got != "cut\nlast line" {
		t.Errorf("big log tail = %q", got)
	}
}

func TestConsoleError(t *testing.T) {
	e := &ConsoleError{Reason: `console did not show "login:": context deadline exceeded`, Tail: "a\nb", Err: context.DeadlineExceeded}
	want := "qemu: console did not show \"login:\": context deadline exceeded; last console lines:\n    a\n    b"
	if e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
	if !errors.Is(e, context.DeadlineExceeded) {
		t.Error("ConsoleError does not unwrap to its cause")
	}
	empty := &ConsoleError{Reason: "guest did not power off"}
	if got := empty.Error(); got != "qemu: guest did not power off (the console is empty)" {
		t.Errorf("Error() = %q", got)
	}
}

func TestExitError(t *testing.T) {
	e := &ExitError{Code: 1, Stderr: "noise\nqemu-system-x86_64: -bogus: invalid option\n"}
	if got, want := e.Error(), `qemu: exit status 1: stderr: "noise\nqemu-system-x86_64: -bogus: invalid option"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	k := &ExitError{Code: -1, Signal: 9, Err: context.Canceled}
	if got, want := k.Error(), "qemu: killed by signal 9 (killed) after context canceled"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(k, context.Canceled) {
		t.Error("ExitError does not unwrap to its cause")
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	fmt.Fprint(b, "0123456789")
	fmt.Fprint(b, "ab")
	if got := b.String(); got != "456789ab" {
		t.Errorf("tail = %q", got)
	}
}
