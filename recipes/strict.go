package recipes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Positions maps the field paths of a decoded document (name, size.memory,
// hosts[1]) to where they were written; "" is the document itself.
type Positions map[string]Pos

// Of returns where path was written or, when it was not, where its nearest
// written parent was: a default that was never written is placed at what
// holds it.
func (p Positions) Of(path string) Pos {
	for q := path; ; {
		if ps, ok := p[q]; ok {
			return ps
		}
		if q == "" {
			return Pos{}
		}
		i := strings.LastIndexAny(q, ".[")
		if i < 0 {
			i = 0
		}
		q = q[:i]
	}
}

// DecodeStrict decodes every YAML document of data, the content of file,
// into a new element appended to the slice docs points to (a pointer to a
// slice of structs), by the rules recipes are read by: keys are the yaml
// tags of the structs' fields; an unknown key (with the closest valid one
// suggested), a duplicate key or a wrong type is an Error placed at
// file:line:col; decoding goes on after each problem, so one run reports
// them all. Fields of the types Size, Duration, Mode, Command and Secret
// take their recipe forms ("512MiB", "90s", "0644", ...).
//
// A document with a YAML syntax error is reported and skipped; the others
// are still decoded. Empty documents are skipped. The i-th Positions
// returned belongs to the i-th element appended. An empty list means no
// problem. It neither defaults nor validates values: that is the caller's
// part, which places its own errors with the Positions.
func DecodeStrict(file string, data []byte, docs any) ([]Positions, ErrorList) {
	out := reflect.ValueOf(docs)
	if out.Kind() != reflect.Pointer || out.Elem().Kind() != reflect.Slice {
		panic(fmt.Sprintf("recipes.DecodeStrict: docs must be a pointer to a slice, not %T", docs))
	}
	out = out.Elem()
	if !utf8.Valid(data) {
		line, col := invalidUTF8At(data)
		return nil, ErrorList{{Pos: Pos{file, line, col}, Msg: "file is not valid UTF-8 text; save it as UTF-8"}}
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		line, col := offsetToLineCol(data, i)
		return nil, ErrorList{{Pos: Pos{file, line, col}, Msg: "file contains a NUL byte; is it a binary file?"}}
	}
	var errs ErrorList
	var positions []Positions
	// The expansion and probing budgets are the file's, not each document's.
	nodes, probed := 0, 0
	for _, c := range splitDocuments(data, splitLines(data)) {
		dec := yaml.NewDecoder(bytes.NewReader(data[c.start:c.end]))
		first := true // no document of this part decoded yet
		for {
			var doc yaml.Node
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				// yaml.v3 cannot go on past a syntax error; the next
				// document, cut apart beforehand, can.
				errs = append(errs, syntaxProblem(file, data[c.start:c.end], c.line, err, first, &probed))
				break
			}
			first = false
			shiftLines(&doc, c.line-1)
			if len(doc.Content) == 0 || (isNull(doc.Content[0]) && doc.Content[0].Value == "") {
				continue
			}
			root := doc.Content[0]
			if root.Kind != yaml.MappingNode {
				errs = append(errs, &Error{Pos: Pos{file, root.Line, root.Column},
					Msg: "expected a mapping of keys (key: value) as the document, got " + describe(root)})
				continue
			}
			d := newDecoder(func(*yaml.Node) string { return file })
			d.what, d.nodes = "file", nodes
			elem := reflect.New(out.Type().Elem()).Elem()
			d.decode(root, "", elem)
			nodes = d.nodes
			errs = append(errs, d.errs...)
			out.Set(reflect.Append(out, elem))
			positions = append(positions, Positions(d.pos))
			if d.exhausted() {
				return positions, sortByPos(errs)
			}
		}
	}
	return positions, sortByPos(errs)
}

// document is a part of a file that holds one YAML document (or several
// separated by "..."): bytes start to end, lines line to line+lines-1.
type document struct{ start, end, line, lines int }

// splitDocuments cuts data before every document start marker ("---" at
// column 1, alone or before a space or a tab: YAML allows nothing else
// there, not even inside a scalar) and the directives (%YAML) right above
// it, so a syntax error in one document leaves the others readable.
func splitDocuments(data []byte, lines []line) []document {
	var cuts []int // line indexes where a document starts
	for i, ln := range lines {
		text := data[ln.start:ln.end]
		if i == 0 || !bytes.HasPrefix(text, []byte("---")) || (len(text) > 3 && text[3] != ' ' && text[3] != '\t') {
			continue
		}
		prev := 0
		if len(cuts) > 0 {
			prev = cuts[len(cuts)-1]
		}
		at := i
		for at > prev && bytes.HasPrefix(data[lines[at-1].start:lines[at-1].end], []byte("%")) {
			at--
		}
		cuts = append(cuts, at)
	}
	var docs []document
	first := 0
	for _, cut := range append(cuts, len(lines)) {
		if cut > first {
			docs = append(docs, document{start: lines[first].start, end: lines[cut-1].next, line: first + 1, lines: cut - first})
		}
		first = cut
	}
	return docs
}

// shiftLines moves every node of a document parsed alone by offset lines,
// to where it is in the whole file. Aliased nodes are in the tree once.
func shiftLines(n *yaml.Node, offset int) {
	n.Line += offset
	for _, c := range n.Content {
		shiftLines(c, offset)
	}
}

// syntaxProblem places the YAML syntax error err of a document, text
// starting at line start of file, as recipes' own recovery does: at the
// line whose removal alone lets the document parse (yaml.v3 often names
// the line where a list or a mapping began), within the file's budget of
// bytes parsed while probing. Probing needs the error to be in the first
// document of text (whole reports that it is).
func syntaxProblem(file string, text []byte, start int, err error, whole bool, probed *int) *Error {
	ln, msg := yamlProblem(err)
	d, blocks := newDoc(text)
	at := min(max(ln-1, 0), len(d.lines)-1)
	if whole && len(blocks) > 0 {
		keep := make([]bool, len(blocks))
		for i := range keep {
			keep[i] = true
		}
		d.parsed = *probed
		at = d.place(keep, block{first: 0, last: len(d.lines) - 1}, ln)
		*probed = d.parsed
	}
	msg = "YAML syntax: " + msg
	if tabIndented(d.line(at)) && !strings.Contains(msg, "tab") {
		msg += " (a tab: YAML indents with spaces)"
	}
	return &Error{Pos: Pos{file, start + at, d.col(at)}, Msg: msg + "; this document was not checked: fix the syntax error first"}
}
