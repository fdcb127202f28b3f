package recipes

import (
	"strings"
	"testing"
)

// strictDoc stands for another package's own document type.
type strictDoc struct {
	Name  string   `yaml:"name"`
	Count *int     `yaml:"count"`
	Size  Size     `yaml:"size"`
	Tags  []string `yaml:"tags"`
	Inner struct {
		Port int `yaml:"port"`
	} `yaml:"inner"`
}

func TestDecodeStrict(t *testing.T) {
	for _, c := range []struct {
		name  string
		in    string
		docs  int      // elements appended
		names []string // their names
		errs  []string // every problem, in order
	}{
		{name: "two documents", in: "name: a\nsize: 512MiB\n---\nname: b\ncount: 3\n", docs: 2, names: []string{"a", "b"}},
		{name: "markers around", in: "---\nname: a\n---\n---\nname: b\n...\n", docs: 2, names: []string{"a", "b"}},
		{name: "empty file", in: "", docs: 0},
		{name: "comments only", in: "# nothing\n---\n# still nothing\n", docs: 0},
		{
			name: "every problem of every document",
			in:   "name: a\ncount: three\n---\nnmae: b\ninner: {port: x, host: y}\n",
			docs: 2, names: []string{"a", ""},
			errs: []string{
				`f.yaml:2:8: count: expected an integer, got "three"`,
				`f.yaml:4:1: nmae: unknown key "nmae" (did you mean "name"?)`,
				`f.yaml:5:15: inner.port: expected an integer, got "x"`,
				`f.yaml:5:18: inner.host: unknown key "host" (did you mean "port"?)`,
			},
		},
		{
			name: "syntax error skips its document only",
			in:   "name: a\ntags: [x\n---\nname: b\nsize: 12XB\n",
			docs: 1, names: []string{"b"},
			errs: []string{
				"f.yaml:2:1: YAML syntax: did not find expected ',' or ']'; this document was not checked: fix the syntax error first",
				`f.yaml:5:7: size: invalid size "12XB": write a whole number with a unit, like 4GiB or 512MiB`,
			},
		},
		{
			name: "syntax error in a later document",
			in:   "name: a\n---\nname: b\n  count: 1\n",
			docs: 1, names: []string{"a"},
			errs: []string{"f.yaml:4:3: YAML syntax: mapping values are not allowed in this context; this document was not checked: fix the syntax error first"},
		},
		{
			name: "a document that is no mapping",
			in:   "name: a\n---\n- name: b\n",
			docs: 1, names: []string{"a"},
			errs: []string{"f.yaml:3:1: expected a mapping of keys (key: value) as the document, got a list"},
		},
		{
			name: "directives stay with their document",
			in:   "name: a\n...\n%YAML 1.1\n---\nname: b\n",
			docs: 2, names: []string{"a", "b"},
		},
		{
			name: "dashes in a value are no marker",
			in:   "name: a\ntags:\n  - ---x\n---x: 1\n",
			docs: 1, names: []string{"a"},
			errs: []string{`f.yaml:4:1: ---x: unknown key "---x" (valid keys: count, inner, name, size, tags)`},
		},
		{
			name: "a tab",
			in:   "name: a\n---\nname: b\ninner:\n\tport: 1\n",
			docs: 1, names: []string{"a"},
			errs: []string{"f.yaml:5:1: YAML syntax: found character that cannot start any token (a tab: YAML indents with spaces); this document was not checked: fix the syntax error first"},
		},
		{
			name: "duplicate key",
			in:   "name: a\nname: b\n",
			docs: 1, names: []string{"a"},
			errs: []string{`f.yaml:2:1: name: key "name" appears twice`},
		},
		{
			name: "not UTF-8",
			in:   "name: a\n\xff\n",
			errs: []string{"f.yaml:2:1: file is not valid UTF-8 text; save it as UTF-8"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			var docs []strictDoc
			pos, errs := DecodeStrict("f.yaml", []byte(c.in), &docs)
			if len(docs) != c.docs || len(pos) != len(docs) {
				t.Fatalf("got %d documents and %d positions, want %d", len(docs), len(pos), c.docs)
			}
			for i, want := range c.names {
				if docs[i].Name != want {
					t.Errorf("document %d: name %q, want %q", i, docs[i].Name, want)
				}
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(c.errs, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.errs, "\n"))
			}
		})
	}
}

func TestDecodeStrictValues(t *testing.T) {
	var docs []strictDoc
	pos, errs := DecodeStrict("f.yaml", []byte("# fleet\n---\nname: a\n---\nname: b\ncount: 0\nsize: 8GiB\ninner:\n  port: 80\n"), &docs)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if docs[0].Count != nil || docs[1].Count == nil || *docs[1].Count != 0 {
		t.Errorf("count: unset must stay nil, 0 must be 0: %+v", docs)
	}
	if docs[1].Size != 8<<30 || docs[1].Inner.Port != 80 {
		t.Errorf("values: %+v", docs[1])
	}
	for _, c := range []struct {
		doc        int
		path, want string
	}{
		{0, "", "f.yaml:3:1"},
		{0, "size", "f.yaml:3:1"}, // not written: placed at the document
		{1, "count", "f.yaml:6:8"},
		{1, "inner.port", "f.yaml:9:9"},
		{1, "inner.host", "f.yaml:9:3"}, // nearest written parent
		{1, "tags[3]", "f.yaml:5:1"},
	} {
		if got := pos[c.doc].Of(c.path).String(); got != c.want {
			t.Errorf("document %d: Of(%q) = %s, want %s", c.doc, c.path, got, c.want)
		}
	}
	if got := (Positions{}).Of("x"); got != (Pos{}) {
		t.Errorf("empty positions: %v", got)
	}
}

// TestDecodeStrictBudget: the alias expansion budget is the file's, and
// the message names the file, not a recipe.
func TestDecodeStrictBudget(t *testing.T) {
	in := "a: &a [[], [], [], [], [], [], [], [], [], []]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g"} {
		in += n + ": &" + n + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]\n"
		prev = n
	}
	var docs []map[string]nested
	_, errs := DecodeStrict("f.yaml", []byte("tags: [x]\n---\n"+in), &docs)
	if len(errs) == 0 || !strings.Contains(errs.Error(), "file expands to more than") {
		t.Fatalf("want the expansion budget error, got %v", errs)
	}
}

// nested is lists all the way down: what the budget test expands.
type nested []nested

func TestDecodeStrictNeedsSlicePointer(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("a non-slice target must panic: it is a programming error")
		}
	}()
	var d strictDoc
	DecodeStrict("f.yaml", []byte("name: a\n"), &d)
}
