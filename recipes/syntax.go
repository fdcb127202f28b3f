package recipes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/kiln-project/kiln/internal/lazyre"
	"gopkg.in/yaml.v3"
)

// Recovering from YAML syntax errors.
//
// yaml.v3 stops at the first syntax error and says only which line it was
// on (often the line where the enclosing list or mapping began). One typo
// should not hide every other problem of a recipe, so on a syntax error the
// recipe is cut into its top-level blocks, each a line that starts with a
// key at column 1 and the lines up to the next one, and put together again
// block by block. A block that does not parse after the blocks kept before it
// is set aside: its lines are blanked, so every other line keeps its number.
// Its syntax error is placed at the line whose removal alone lets the block
// parse, when there is one. The rest is decoded and validated as usual, and
// problems under a key that was set aside are dropped: that part was not read.
// When nothing usable is left, the recipe is written as one flow collection
// (no top-level lines to cut at), or extends was set aside (without the
// parent every check would mislead), the error says the rest was not checked.

const (
	// maxBlocks bounds the blocks tried one by one. A recipe has a dozen
	// top-level keys; a file with many more is not one.
	maxBlocks = 64
	// maxProbeBytes bounds the text parsed while placing errors on lines by
	// trying every line of a block; past it, lines are tried only within
	// probeWindow of the line yaml.v3 names.
	maxProbeBytes = 32 << 20
	probeWindow   = 3
)

const notChecked = "the rest of the recipe was not checked: fix the syntax error first"

// aside is what was set aside of a recipe that did not parse.
type aside struct {
	errs ErrorList // the syntax errors, and notes on blocks that could not be read
	keys []string  // top-level keys set aside
	text []byte    // the lines set aside
}

func (a *aside) add(b *aside) {
	a.errs = append(a.errs, b.errs...)
	a.keys = append(a.keys, b.keys...)
	a.text = append(a.text, b.text...)
}

// drop reports whether a problem may come from a part of the recipe that
// was set aside, so it was not read: it concerns a key set aside, or a
// top-level field that was not written (written tells) but appears as a key
// in the lines set aside, at whatever indentation a typo gave it.
func (a *aside) drop(e *Error, written func(path string) bool) bool {
	for _, k := range a.keys {
		if e.Path == k || strings.HasPrefix(e.Path, k+".") || strings.HasPrefix(e.Path, k+"[") {
			return true
		}
	}
	if e.Path == "" || strings.ContainsAny(e.Path, ".[") || written(e.Path) {
		return false
	}
	for _, ln := range bytes.Split(a.text, []byte("\n")) {
		if m := topKeyRE.RE().FindSubmatch(bytes.TrimLeft(ln, " \t-")); m != nil && keyOf(m) == e.Path {
			return true
		}
	}
	return false
}

// line is one line of a recipe: its text is data[start:end], its line break
// data[end:next].
type line struct{ start, end, next int }

// splitLines cuts data at the line breaks YAML counts: \n, \r\n, \r, and
// U+0085, U+2028, U+2029, so line numbers agree with yaml.v3's.
func splitLines(data []byte) []line {
	var lines []line
	start := 0
	for i := 0; i < len(data); {
		brk := 0
		switch {
		case data[i] == '\n':
			brk = 1
		case data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n':
			brk = 2
		case data[i] == '\r':
			brk = 1
		case bytes.HasPrefix(data[i:], []byte("\u0085")):
			brk = 2
		case bytes.HasPrefix(data[i:], []byte("\u2028")), bytes.HasPrefix(data[i:], []byte("\u2029")):
			brk = 3
		}
		if brk == 0 {
			i++
			continue
		}
		lines = append(lines, line{start, i, i + brk})
		i += brk
		start = i
	}
	return append(lines, line{start, len(data), len(data)})
}

// block is a top-level block: lines first to last (0-based, last being its
// last line with content).
type block struct {
	key         string // its key, or the first word of a line that should have been one
	first, last int
}

// topKeyRE matches a line that starts a top-level mapping entry: a plain or
// quoted key at column 1, then a colon and a space or the end of the line.
var topKeyRE = lazyre.New(`^(?:"([^"\\]*)"|'([^']*)'|([^\s#\-?:,\[\]{}&*!|>'"%@` + "`" + `][^#]*?|[-?:][^\s#][^#]*?))[ \t]*:(?:[ \t\r]|$)`)

// blank reports whether a line holds nothing but spaces or a comment.
func blank(text []byte) bool {
	t := bytes.TrimLeft(text, " \t")
	return len(t) == 0 || t[0] == '#'
}

// splitBlocks finds the top-level blocks. Lines before the first key make a
// block of their own unless they are blank.
func splitBlocks(data []byte, lines []line) []block {
	var blocks []block
	for i, ln := range lines {
		text := data[ln.start:ln.end]
		if blank(text) {
			continue
		}
		m := topKeyRE.RE().FindSubmatch(text)
		if len(blocks) == 0 || m != nil {
			key := firstWord(text)
			if m != nil {
				key = keyOf(m)
			}
			blocks = append(blocks, block{key: key, first: i})
		}
		blocks[len(blocks)-1].last = i
	}
	return blocks
}

// keyOf is the key in a match of topKeyRE: the one alternative that matched.
func keyOf(m [][]byte) string {
	for _, k := range m[1:] {
		if k != nil {
			return string(bytes.TrimSpace(k))
		}
	}
	return ""
}

// firstWord is what a line that should have started with a key probably
// meant as one: "apiVersion kiln/v1" -> apiVersion.
func firstWord(text []byte) string {
	t := bytes.TrimSpace(text)
	if i := bytes.IndexAny(t, " \t:"); i >= 0 {
		t = t[:i]
	}
	return string(t)
}

// doc is a recipe's text, rebuilt with some of its blocks.
type doc struct {
	data   []byte
	lines  []line
	owner  []int // block index of each line, -1 for none
	parsed int   // bytes parsed so far while placing errors
}

// line is the text of line i (0-based), without its line break.
func (d *doc) line(i int) []byte { return d.data[d.lines[i].start:d.lines[i].end] }

// text returns the recipe with the lines of blocks not in keep (and of
// blocks past its end) blanked, and line skip (-1 for none) too.
func (d *doc) text(keep []bool, skip int) []byte {
	out := make([]byte, 0, len(d.data))
	for i, ln := range d.lines {
		o := d.owner[i]
		if i != skip && (o < 0 || (o < len(keep) && keep[o])) {
			out = append(out, d.data[ln.start:ln.end]...)
		}
		out = append(out, d.data[ln.end:ln.next]...)
	}
	return out
}

// errTopLevel is a block that parses alone but is no mapping entry.
var errTopLevel = errors.New("expected a key and a colon (key: value) at the top level")

// try parses the recipe with the given blocks: nil when it is a mapping, or
// empty.
func (d *doc) try(keep []bool, skip int) error {
	text := d.text(keep, skip)
	d.parsed += len(text)
	var n yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(text)).Decode(&n); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if len(n.Content) > 0 && n.Content[0].Kind != yaml.MappingNode {
		return errTopLevel
	}
	return nil
}

// newDoc cuts data into lines and top-level blocks.
func newDoc(data []byte) (*doc, []block) {
	lines := splitLines(data)
	blocks := splitBlocks(data, lines)
	d := &doc{data: data, lines: lines, owner: make([]int, len(lines))}
	for i := range d.owner {
		d.owner[i] = -1
	}
	for bi, b := range blocks {
		end := len(lines)
		if bi+1 < len(blocks) {
			end = blocks[bi+1].first
		}
		for i := b.first; i < end; i++ {
			d.owner[i] = bi
		}
	}
	return d, blocks
}

// recoverSyntax sets aside the blocks of a recipe that do not parse (see
// the comment at the top of this file) and parses the rest. It returns the
// rest and what was set aside, or an error holding the syntax errors when
// the rest cannot be checked.
func recoverSyntax(path string, data []byte, yerr error) (*yaml.Node, *aside, error) {
	d, blocks := newDoc(data)
	// A document written as one flow collection ({...} or [...]) has no
	// top-level lines to cut at.
	if len(blocks) == 0 || len(blocks) > maxBlocks || flowStart(d.line(blocks[0].first)) {
		ln, msg := yamlProblem(yerr)
		ln = min(max(ln, 1), len(d.lines))
		return nil, nil, &Error{Pos: Pos{path, ln, d.col(ln - 1)}, Msg: "YAML syntax: " + msg + "; " + notChecked}
	}
	keep := make([]bool, len(blocks))
	a := &aside{}
	var syntax []*Error  // the syntax errors
	var syntaxOf []block // the block each set aside
	for i, b := range blocks {
		keep[i] = true
		err := d.try(keep[:i+1], -1)
		if err == nil {
			continue
		}
		at := b.first
		if err != errTopLevel {
			at = d.place(keep[:i+1], b, yerrLine(err))
		}
		keep[i] = false
		a.keys = append(a.keys, b.key)
		for j := b.first + 1; j <= b.last; j++ {
			if text := d.line(j); !blank(text) && text[0] != ' ' && text[0] != '\t' {
				a.keys = append(a.keys, firstWord(text))
			}
		}
		_, msg := yamlProblem(err)
		if anchor := unknownAnchor(msg); anchor != "" && bytes.Contains(a.text, []byte("&"+anchor)) {
			a.errs = append(a.errs, &Error{Pos: Pos{path, b.first + 1, 1}, Path: b.key,
				Msg: fmt.Sprintf("not checked: it uses an anchor (&%s) defined in lines set aside for a syntax error", anchor)})
			continue
		}
		for j := b.first; j <= b.last; j++ {
			a.text = append(append(a.text, d.line(j)...), '\n')
		}
		msg = "YAML syntax: " + msg
		if tabIndented(d.line(at)) && !strings.Contains(msg, "tab") {
			msg += " (a tab: YAML indents with spaces)"
		}
		e := &Error{Pos: Pos{path, at + 1, d.col(at)}, Msg: msg}
		syntax, syntaxOf = append(syntax, e), append(syntaxOf, b)
		a.errs = append(a.errs, e)
	}
	if len(syntax) == 0 { // cannot happen: the whole recipe is the last try
		ln, msg := yamlProblem(yerr)
		return nil, nil, &Error{Pos: Pos{path, min(max(ln, 1), len(d.lines)), 1}, Msg: "YAML syntax: " + msg + "; " + notChecked}
	}
	// Without its parent, every check of the rest would mislead.
	rest := !slices.Contains(a.keys, "extends")
	var root *yaml.Node
	if rest {
		var err error
		if root, err = parseYAML(path, d.text(keep, -1)); err != nil {
			rest = false
			if e, ok := err.(*Error); ok && e.Msg != errEmpty {
				a.errs = append(a.errs, e)
			}
		}
	}
	if !rest {
		syntax[0].Msg += "; " + notChecked
		return nil, nil, a.errs.Err()
	}
	for i, e := range syntax {
		e.Msg += "; " + syntaxOf[i].describe() + " was set aside and the rest of the recipe checked"
	}
	return root, a, nil
}

// flowStart reports whether a line opens a flow collection.
func flowStart(text []byte) bool {
	t := bytes.TrimLeft(text, " \t")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

// place finds the line of block b, the last of keep, that holds its syntax
// error: the one line whose removal lets the recipe so far parse, tried from
// the end (of two lines indented differently, the later one is usually the
// one that strayed). A block too long to try every line is tried near the
// line yaml.v3 named (ln, 1-based, 0 for none), which for some errors is the
// line before. Failing all that, it is that line, kept within the block.
func (d *doc) place(keep []bool, b block, ln int) int {
	at := min(max(ln-1, b.first), b.last)
	first, last := b.first, b.last
	if (b.last-b.first+1)*len(d.data) > maxProbeBytes-d.parsed {
		first, last = max(at-probeWindow, b.first), min(at+probeWindow, b.last)
	}
	for j := last; j >= first; j-- {
		if !blank(d.line(j)) && d.try(keep, j) == nil {
			return j
		}
	}
	return at
}

// col is the column of the first character of line i (0-based) that is not
// a space, or of a tab that indents it; 1 for a blank line.
func (d *doc) col(i int) int {
	text := d.data[d.lines[i].start:d.lines[i].end]
	col := 1
	for len(text) > 0 && (text[0] == ' ' || text[0] == '\t') {
		if text[0] == '\t' {
			return col
		}
		text, col = text[1:], col+1
	}
	if len(text) == 0 {
		return 1
	}
	return col
}

// describe names a block for messages: "bake (lines 3-5)".
func (b block) describe() string {
	where := fmt.Sprintf("lines %d-%d", b.first+1, b.last+1)
	if b.first == b.last {
		where = fmt.Sprintf("line %d", b.first+1)
	}
	if b.key == "" {
		return "the block at " + where
	}
	return fmt.Sprintf("%s (%s)", b.key, where)
}

func tabIndented(text []byte) bool {
	indent := len(text) - len(bytes.TrimLeft(text, " \t"))
	return bytes.IndexByte(text[:indent], '\t') >= 0
}

var unknownAnchorRE = lazyre.New(`^unknown anchor '(.*)' referenced$`)

func unknownAnchor(msg string) string {
	if m := unknownAnchorRE.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return ""
}

func yerrLine(err error) int {
	ln, _ := yamlProblem(err)
	return ln
}

// yamlProblem splits a yaml.v3 error ("yaml: line 3: did not find expected
// key") into its line (0 when it names none) and message.
func yamlProblem(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, text, ok := strings.Cut(rest, ": "); ok {
			if ln, err := strconv.Atoi(n); err == nil {
				return ln, text
			}
		}
	}
	return 0, msg
}
