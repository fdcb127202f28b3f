package recipes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// MaxRecipeSize bounds a recipe file. Recipes are short; anything bigger is a
// mistake (a binary or a log passed by accident), refused before parsing.
const MaxRecipeSize = 1 << 20

// maxExtendsDepth bounds extends chains.
const maxExtendsDepth = 16

// source is where a recipe came from, with the position of every field.
type source struct {
	file  string         // the recipe file as given
	dir   string         // its directory: relative references resolve here
	files []string       // every file read, the recipe first, then what it extends
	pos   map[string]Pos // field path -> position
}

// Load reads a recipe file and everything it extends, and decodes it
// strictly. It does not fill defaults or validate values: call Default and
// Validate (or LoadAndCheck, which does all three). The exception is a
// recipe with YAML syntax errors: Load fails, and its ErrorList holds the
// syntax errors and every problem of the rest of the recipe, defaults and
// validation included, so one run reports them all.
func Load(path string) (*Recipe, error) {
	return load(path, nil)
}

// LoadData is Load for a recipe held in memory (a Packer template's
// recipe_content): name stands for its file in positions ("name:3:5: ...")
// and relative references (extends, source:) resolve against name's
// directory. Like Load, it neither fills defaults nor validates.
func LoadData(name string, data []byte) (*Recipe, error) {
	if len(data) > MaxRecipeSize {
		return nil, &Error{Pos: Pos{File: name}, Msg: fmt.Sprintf("recipe is %d bytes, more than the %d byte limit", len(data), MaxRecipeSize)}
	}
	if data == nil {
		data = []byte{}
	}
	return load(name, data)
}

// load reads path, or decodes data as if read from path when data is not nil
// (the fuzz tests feed bytes without touching the disk).
func load(path string, data []byte) (*Recipe, error) {
	l := &loader{fileOf: map[*yaml.Node]string{}, data: data}
	root, err := l.load(path, nil, nil)
	if err != nil {
		return nil, l.withAside(err)
	}
	d := newDecoder(func(n *yaml.Node) string { return l.fileOf[n] })
	r := &Recipe{}
	d.decode(root, "", reflect.ValueOf(r).Elem())
	abs, _ := filepath.Abs(path)
	r.source = &source{file: path, dir: filepath.Dir(abs), files: l.files, pos: d.pos}
	if len(l.aside.errs) == 0 {
		if err := d.errs.Err(); err != nil {
			return nil, err
		}
		return r, nil
	}
	// Parts were set aside for syntax errors: the recipe fails, with every
	// problem of the rest, decoding first, then values, as LoadAndCheck
	// would report them.
	problems := d.errs
	if len(problems) == 0 {
		Default(r)
		var el ErrorList
		if errors.As(Validate(r), &el) {
			problems = el
		}
	}
	errs := append(ErrorList{}, l.aside.errs...)
	written := func(path string) bool { _, ok := d.pos[path]; return ok }
	for _, e := range problems {
		if !l.aside.drop(e, written) {
			errs = append(errs, e)
		}
	}
	return nil, errs.Err()
}

// withAside adds the syntax errors of files read before a failure to it.
func (l *loader) withAside(err error) error {
	if len(l.aside.errs) == 0 {
		return err
	}
	errs := append(ErrorList{}, l.aside.errs...)
	var el ErrorList
	var e *Error
	switch {
	case errors.As(err, &el):
		errs = append(errs, el...)
	case errors.As(err, &e):
		errs = append(errs, e)
	default:
		return err
	}
	return errs.Err()
}

// LoadAndCheck loads, defaults and validates a recipe.
func LoadAndCheck(path string) (*Recipe, error) {
	r, err := Load(path)
	if err != nil {
		return nil, err
	}
	Default(r)
	if err := Validate(r); err != nil {
		return nil, err
	}
	return r, nil
}

type loader struct {
	fileOf map[*yaml.Node]string
	files  []string
	data   []byte // content of the first file, when given instead of read
	aside  aside  // what was set aside of files with syntax errors
}

// load parses one file and, when it extends another, merges it over its
// parent. stack holds the absolute paths being loaded, to catch cycles; ref
// is the extends entry that named the file (nil for the recipe itself),
// where problems with the file as a whole are reported.
func (l *loader) load(path string, stack []string, ref *yaml.Node) (*yaml.Node, error) {
	at := func(msg string) *Error {
		if ref == nil {
			return &Error{Pos: Pos{File: path}, Msg: msg}
		}
		return &Error{Pos: Pos{l.fileOf[ref], ref.Line, ref.Column}, Path: "extends", Msg: msg}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	for i, s := range stack {
		if s == abs {
			chain := append(append([]string{}, stack[i:]...), abs)
			return nil, at("extends cycle: " + strings.Join(chain, " -> "))
		}
	}
	if len(stack) >= maxExtendsDepth {
		return nil, at(fmt.Sprintf("extends chain deeper than %d files", maxExtendsDepth))
	}
	data := l.data
	l.data = nil
	if data == nil || len(data) > MaxRecipeSize {
		var err error
		if data, err = readRecipeFile(path); err != nil {
			var e *Error
			if ref != nil && errors.As(err, &e) {
				return nil, at(fmt.Sprintf("%q: %s", ref.Value, e.Msg))
			}
			return nil, err
		}
	}
	l.files = append(l.files, path)
	root, a, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	if a != nil {
		l.aside.add(a)
	}
	l.mark(root, path)
	_, parentVal := mappingValue(root, "extends")
	if parentVal == nil || isNull(parentVal) {
		return root, nil
	}
	if parentVal.Kind != yaml.ScalarNode {
		return nil, &Error{Pos: Pos{path, parentVal.Line, parentVal.Column}, Path: "extends", Msg: "expected the path of a recipe file"}
	}
	parentPath := parentVal.Value
	if !filepath.IsAbs(parentPath) {
		parentPath = filepath.Join(filepath.Dir(path), parentPath)
	}
	if _, err := os.Stat(parentPath); err != nil {
		return nil, &Error{Pos: Pos{path, parentVal.Line, parentVal.Column}, Path: "extends",
			Msg: fmt.Sprintf("cannot read %q: %v", parentVal.Value, errors.Unwrap(err))}
	}
	parent, err := l.load(parentPath, append(stack, abs), parentVal)
	if err != nil {
		return nil, err
	}
	// The merged document keeps the child's extends entry, so the decoded
	// recipe records what it extends; the parent's own is dropped.
	removeKey(parent, "extends")
	return l.merge(parent, root, ""), nil
}

// readRecipeFile reads a recipe with the size and encoding checks that come
// before any parsing.
func readRecipeFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{Pos: Pos{File: path}, Msg: fmt.Sprintf("cannot read recipe: %v", errors.Unwrap(err))}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, &Error{Pos: Pos{File: path}, Msg: "is a directory, not a recipe file"}
	}
	if st.Size() > MaxRecipeSize {
		return nil, &Error{Pos: Pos{File: path}, Msg: fmt.Sprintf("recipe is %d bytes, more than the %d byte limit; recipes describe a server, large content belongs in files referenced with source:", st.Size(), MaxRecipeSize)}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxRecipeSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > MaxRecipeSize {
		return nil, &Error{Pos: Pos{File: path}, Msg: fmt.Sprintf("recipe is more than the %d byte limit", MaxRecipeSize)}
	}
	return data, nil
}

// parse checks encoding and parses YAML into a node tree. On a YAML syntax
// error it recovers what it can (see recoverSyntax): it returns the rest of
// the recipe and what was set aside, or an error when the rest cannot be
// checked.
func parse(path string, data []byte) (*yaml.Node, *aside, error) {
	if !utf8.Valid(data) {
		line, col := invalidUTF8At(data)
		return nil, nil, &Error{Pos: Pos{path, line, col}, Msg: "recipe is not valid UTF-8 text; save it as UTF-8"}
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		line, col := offsetToLineCol(data, i)
		return nil, nil, &Error{Pos: Pos{path, line, col}, Msg: "recipe contains a NUL byte; is it a binary file?"}
	}
	root, err := parseYAML(path, data)
	var se syntaxError
	if errors.As(err, &se) {
		return recoverSyntax(path, data, se.err)
	}
	return root, nil, err
}

// syntaxError is a YAML syntax error, as yaml.v3 reports it.
type syntaxError struct{ err error }

func (e syntaxError) Error() string { return e.err.Error() }

// errEmpty is the message for a recipe without content.
const errEmpty = "recipe is empty; it needs at least apiVersion and name"

// parseYAML parses a recipe that must be one YAML document holding a
// mapping. A YAML syntax error comes back as a syntaxError.
func parseYAML(path string, data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Pos: Pos{path, 1, 1}, Msg: errEmpty}
		}
		return nil, syntaxError{err}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line, col := extra.Line, extra.Column
		if err != nil {
			line, col = secondDocument(data), 1
		}
		return nil, &Error{Pos: Pos{path, line, col}, Msg: "a recipe file holds one YAML document; remove the second ---"}
	}
	// An empty document ("---" alone) has a null root, placed past the end.
	if len(doc.Content) == 0 || (isNull(doc.Content[0]) && doc.Content[0].Value == "") {
		return nil, &Error{Pos: Pos{path, 1, 1}, Msg: errEmpty}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &Error{Pos: Pos{path, root.Line, root.Column}, Msg: "a recipe is a mapping of keys (apiVersion, name, roles, ...), got " + describe(root)}
	}
	return root, nil
}

// secondDocument is the line of the marker (--- or ...) that ends the first
// YAML document of data, for a second document that does not parse.
func secondDocument(data []byte) int {
	content := false
	for i, ln := range splitLines(data) {
		text := data[ln.start:ln.end]
		switch {
		case bytes.HasPrefix(text, []byte("---")) || bytes.HasPrefix(text, []byte("...")):
			if content {
				return i + 1
			}
		case !blank(text) && text[0] != '%':
			content = true
		}
	}
	return 1
}

func invalidUTF8At(data []byte) (int, int) {
	off := 0
	for off < len(data) {
		r, size := utf8.DecodeRune(data[off:])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		off += size
	}
	return offsetToLineCol(data, off)
}

// offsetToLineCol places a byte offset as yaml.v3 would: lines split at
// every YAML line break, columns counted in characters.
func offsetToLineCol(data []byte, off int) (int, int) {
	lines := splitLines(data)
	for i, ln := range lines {
		if off < ln.next || i == len(lines)-1 {
			return i + 1, utf8.RuneCount(data[ln.start:min(off, ln.end)]) + 1
		}
	}
	return 1, 1
}

// mark records which file every node of a tree came from.
func (l *loader) mark(n *yaml.Node, file string) {
	if n == nil {
		return
	}
	if _, done := l.fileOf[n]; done {
		return
	}
	l.fileOf[n] = file
	for _, c := range n.Content {
		l.mark(c, file)
	}
	if n.Alias != nil {
		l.mark(n.Alias, file)
	}
}
