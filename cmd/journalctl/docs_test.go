package main

// The docs test: the project documents itself in README.md and docs/, and
// this test holds the documentation to the code. It walks the real cobra
// command tree (newRootCmd), the server's endpoint table (server.Routes)
// and the error codes the code can emit, and checks each is documented in
// its page, and that nothing documented as a command, flag, endpoint or
// code is missing from the code. It also checks that README.md and every
// page under docs/ link only inside the repository, to files that exist.

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agentruntime/statejournal/server"
	"github.com/agentruntime/statejournal/types"
)

// repoRoot is the module root: the directory above this package holding
// go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func readDoc(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatalf("read %s: %v", rel, err)
	}
	return string(b)
}

// section is the text under one markdown heading, up to the next heading
// of the same or a higher level (sub-headings belong to it).
type section struct {
	title string // heading text without #s and backticks
	level int
	line  int    // 1-based line of the heading
	body  string // up to the next heading of the same or a higher level
	own   string // up to the next heading of any level
}

var headingRE = regexp.MustCompile("^(#{1,6})[ \t]+(.*?)[ \t#]*$")

// sections splits a markdown document at its headings, ignoring lines in
// fenced code blocks.
func sections(doc string) []section {
	lines := strings.Split(doc, "\n")
	type head struct {
		title       string
		level, line int
	}
	var heads []head
	fence := false
	for i, ln := range lines {
		if isFence(ln) {
			fence = !fence
			continue
		}
		if fence {
			continue
		}
		if m := headingRE.FindStringSubmatch(ln); m != nil {
			heads = append(heads, head{title: strings.ReplaceAll(m[2], "`", ""), level: len(m[1]), line: i})
		}
	}
	out := make([]section, 0, len(heads))
	for k, h := range heads {
		end := len(lines)
		for _, n := range heads[k+1:] {
			if n.level <= h.level {
				end = n.line
				break
			}
		}
		ownEnd := end
		if k+1 < len(heads) {
			ownEnd = heads[k+1].line
		}
		out = append(out, section{title: h.title, level: h.level, line: h.line + 1,
			body: strings.Join(lines[h.line+1:end], "\n"), own: strings.Join(lines[h.line+1:ownEnd], "\n")})
	}
	return out
}

func isFence(line string) bool {
	t := strings.TrimSpace(line)
	return strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~")
}

// docCommandPath is the section title a command is documented under:
// its path, with the runtime-prefixed forms documented once with the bare
// command they repeat ("journalctl runtime state-journal" is
// "journalctl state-journal").
func docCommandPath(c *cobra.Command) string {
	p := c.CommandPath()
	if rest, ok := strings.CutPrefix(p, "journalctl runtime "); ok {
		return "journalctl " + rest
	}
	return p
}

// commandTree returns the real command tree as a user meets it: the root
// newRootCmd builds, with the help and completion commands and the help
// (and, when the root has a version, version) flags that cobra adds when
// it executes.
func commandTree() (*cobra.Command, []*cobra.Command) {
	root, _ := newRootCmd()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var all []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden {
			return
		}
		c.InitDefaultHelpFlag()
		c.InitDefaultVersionFlag()
		all = append(all, c)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return root, all
}

// ownFlags are the visible flags a command defines itself (local and
// persistent, not inherited).
func ownFlags(c *cobra.Command) []*pflag.Flag {
	var out []*pflag.Flag
	c.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden && f.Deprecated == "" {
			out = append(out, f)
		}
	})
	return out
}

// mentions reports whether text names the flag spelling (e.g. "--limit",
// "-n") as a whole word.
func mentions(text, spelling string) bool {
	re := regexp.MustCompile(`(^|[^\w-])` + regexp.QuoteMeta(spelling) + `([^\w-]|$)`)
	return re.MatchString(text)
}

// flagRowRE matches a flag table row: "| `-n`, `--limit` N | ...".
var flagRowRE = regexp.MustCompile("^\\|\\s*`(-[\\w-]+)`(?:\\s*,\\s*`(-[\\w-]+)`)?")

func TestEveryCommandAndFlagIsDocumentedInItsSection(t *testing.T) {
	doc := readDoc(t, "docs/cli.md")
	byTitle := map[string]section{}
	for _, s := range sections(doc) {
		if strings.HasPrefix(s.title, "journalctl") {
			if prev, dup := byTitle[s.title]; dup {
				t.Errorf("docs/cli.md: %q has two sections (lines %d and %d)", s.title, prev.line, s.line)
			}
			byTitle[s.title] = s
		}
	}
	root, cmds := commandTree()
	documented := map[string]*cobra.Command{}
	for _, c := range cmds {
		title := docCommandPath(c)
		sec, ok := byTitle[title]
		if !ok {
			t.Errorf("docs/cli.md has no section %q for the command %q (a heading \"## %s\")", title, c.CommandPath(), title)
			continue
		}
		documented[title] = c
		for _, f := range ownFlags(c) {
			// The help flag every command has is documented once, with
			// the global flags.
			where, text := title, sec.body
			if f.Name == "help" {
				where, text = root.CommandPath(), byTitle[root.CommandPath()].body
			}
			if !mentions(text, "--"+f.Name) {
				t.Errorf("docs/cli.md, section %q: flag --%s of %q is not documented", where, f.Name, c.CommandPath())
			}
			if f.Shorthand != "" && !mentions(text, "-"+f.Shorthand) {
				t.Errorf("docs/cli.md, section %q: shorthand -%s (--%s) of %q is not documented", where, f.Shorthand, f.Name, c.CommandPath())
			}
		}
	}
	// The other way round: no section for a command that does not exist,
	// and no flag row naming a flag the command does not have.
	for title, sec := range byTitle {
		c, ok := documented[title]
		if !ok {
			t.Errorf("docs/cli.md:%d: section %q documents no command of journalctl", sec.line, title)
			continue
		}
		names := map[string]bool{}
		for _, f := range ownFlags(c) {
			names["--"+f.Name] = true
			if f.Shorthand != "" {
				names["-"+f.Shorthand] = true
			}
		}
		if c == root {
			names["-h"], names["--help"] = true, true
		}
		for _, ln := range strings.Split(sec.own, "\n") {
			m := flagRowRE.FindStringSubmatch(ln)
			if m == nil {
				continue
			}
			for _, sp := range m[1:] {
				if sp != "" && !names[sp] {
					t.Errorf("docs/cli.md, section %q: the table documents %s, which %q does not have", title, sp, c.CommandPath())
				}
			}
		}
	}
}

var routeHeadingRE = regexp.MustCompile(`^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (/\S*)$`)

func TestEveryEndpointIsDocumented(t *testing.T) {
	doc := readDoc(t, "docs/http.md")
	headed := map[string]int{}
	for _, s := range sections(doc) {
		if routeHeadingRE.MatchString(s.title) {
			headed[s.title] = s.line
		}
	}
	served := map[string]bool{}
	for _, r := range server.Routes() {
		key := r.Method + " " + r.Path
		served[key] = true
		if _, ok := headed[key]; !ok {
			t.Errorf("docs/http.md has no section for %s (a heading \"## %s\")", key, key)
		}
	}
	for key, line := range headed {
		if !served[key] {
			t.Errorf("docs/http.md:%d documents %s, which the server does not serve", line, key)
		}
	}
}

// errorCodes returns every stable error code the code base can emit, read
// from the source: the codes types.Code returns, the server's Code*
// constants, and every literal put into a field or variable named code
// (the CLI's "usage", the client's "draining", the server's "compacted").
func errorCodes(t *testing.T) map[string]string {
	t.Helper()
	root := repoRoot(t)
	codeRE := regexp.MustCompile(`^[a-z][a-z_]*[a-z]$`)
	found := map[string]string{} // code → where
	add := func(fset *token.FileSet, e ast.Expr) {
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil || !codeRE.MatchString(s) {
			return
		}
		if _, ok := found[s]; !ok {
			p := fset.Position(lit.Pos())
			rel, _ := filepath.Rel(root, p.Filename)
			found[s] = rel + ":" + strconv.Itoa(p.Line)
		}
	}
	isCodeName := func(e ast.Expr) bool {
		switch x := e.(type) {
		case *ast.Ident:
			return x.Name == "code" || x.Name == "Code"
		case *ast.SelectorExpr:
			return x.Sel.Name == "Code"
		}
		return false
	}
	for _, dir := range []string{"types", "server", "cmd/journalctl"} {
		fset := token.NewFileSet()
		files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch x := n.(type) {
				case *ast.FuncDecl:
					if x.Name.Name == "Code" && x.Recv == nil && x.Body != nil {
						ast.Inspect(x.Body, func(n ast.Node) bool {
							if r, ok := n.(*ast.ReturnStmt); ok {
								for _, e := range r.Results {
									add(fset, e)
								}
							}
							return true
						})
					}
				case *ast.ValueSpec:
					for i, name := range x.Names {
						if strings.HasPrefix(name.Name, "Code") && i < len(x.Values) {
							add(fset, x.Values[i])
						}
					}
				case *ast.KeyValueExpr:
					if isCodeName(x.Key) {
						add(fset, x.Value)
					}
					if k, ok := x.Key.(*ast.BasicLit); ok && k.Value == `"code"` {
						add(fset, x.Value)
					}
				case *ast.AssignStmt:
					if len(x.Lhs) == len(x.Rhs) {
						for i, l := range x.Lhs {
							if isCodeName(l) {
								add(fset, x.Rhs[i])
							}
						}
					}
				}
				return true
			})
		}
	}
	return found
}

// codeRowRE matches an error table row: "| `compacted` | 410 | 1 | ...",
// capturing the code and the CLI exit column.
var codeRowRE = regexp.MustCompile("^\\|\\s*`([a-z_]+)`\\s*\\|[^|]*\\|\\s*([^|]*?)\\s*\\|")

func TestEveryErrorCodeIsDocumented(t *testing.T) {
	codes := errorCodes(t)
	// The scan must see the codes every layer is known to emit; if it
	// finds none of these, it is broken, not the docs.
	for _, c := range []string{"invalid_change", "unknown_surface", "compacted", "locked", "usage", "not_found", "internal"} {
		if _, ok := codes[c]; !ok {
			t.Fatalf("the source scan did not find the code %q; it found %v", c, codes)
		}
	}
	doc := readDoc(t, "docs/errors.md")
	rows := map[string]int{}
	for i, ln := range strings.Split(doc, "\n") {
		if m := codeRowRE.FindStringSubmatch(ln); m != nil {
			rows[m[1]] = i + 1
			if got, want := m[2], strconv.Itoa(types.ExitCode(m[1])); got != want {
				t.Errorf("docs/errors.md:%d: %s is documented with CLI exit %q, the code table says %s", i+1, m[1], got, want)
			}
		}
	}
	names := make([]string, 0, len(codes))
	for c := range codes {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		if _, ok := rows[c]; !ok {
			t.Errorf("docs/errors.md has no table row for the code %q (emitted at %s)", c, codes[c])
		}
	}
	for c, line := range rows {
		if _, ok := codes[c]; !ok {
			t.Errorf("docs/errors.md:%d documents the code %q, which no code emits", line, c)
		}
	}
}

var (
	// [text](target "title") and ![alt](target); the target is group 1.
	inlineLinkRE = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)`)
	// [label]: target
	refLinkRE = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(\s|$)`)
	// <scheme:...> autolinks and bare URLs.
	autoLinkRE = regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9+.-]*:[^>\s]*)>`)
	bareURLRE  = regexp.MustCompile(`(?i)\b(?:https?|ftp|file)://\S+|\bwww\.\S+|\bmailto:\S+`)
	codeSpanRE = regexp.MustCompile("`[^`]*`")
	schemeRE   = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// markdownFiles are README.md and every page under docs/.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	root := repoRoot(t)
	files := []string{filepath.Join(root, "README.md")}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// anchors returns the GitHub heading anchors of a markdown file.
func anchors(doc string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, s := range sections(doc) {
		var b strings.Builder
		for _, r := range strings.ToLower(s.title) {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			seen[a]++
			a += "-" + strconv.Itoa(n)
		} else {
			seen[a] = 1
		}
		out[a] = true
	}
	return out
}

func TestDocsLinkOnlyInsideTheRepository(t *testing.T) {
	root := repoRoot(t)
	for _, path := range markdownFiles(t) {
		rel, _ := filepath.Rel(root, path)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		fence := false
		for i, ln := range strings.Split(string(b), "\n") {
			where := rel + ":" + strconv.Itoa(i+1)
			if isFence(ln) {
				fence = !fence
				continue
			}
			if fence {
				continue // code examples are not links
			}
			text := codeSpanRE.ReplaceAllString(ln, "``")
			var targets []string
			for _, m := range inlineLinkRE.FindAllStringSubmatch(text, -1) {
				targets = append(targets, m[1])
			}
			if m := refLinkRE.FindStringSubmatch(text); m != nil {
				targets = append(targets, m[1])
			}
			for _, m := range autoLinkRE.FindAllStringSubmatch(text, -1) {
				targets = append(targets, m[1])
			}
			for _, u := range bareURLRE.FindAllString(text, -1) {
				t.Errorf("%s: %q links outside the repository", where, u)
			}
			for _, target := range targets {
				checkLink(t, root, path, where, target)
			}
		}
	}
}

// checkLink requires target to be a relative link to a file or directory
// inside the repository, and its #anchor, if any, to name a heading of
// the markdown file it points to.
func checkLink(t *testing.T, root, from, where, target string) {
	t.Helper()
	if target == "" {
		t.Errorf("%s: a link without a target", where)
		return
	}
	if schemeRE.MatchString(target) || strings.HasPrefix(target, "//") {
		t.Errorf("%s: %q links outside the repository", where, target)
		return
	}
	file, anchor, _ := strings.Cut(target, "#")
	dest := from
	if file != "" {
		if strings.HasPrefix(file, "/") {
			t.Errorf("%s: %q is an absolute path; link relative to the page", where, target)
			return
		}
		dest = filepath.Join(filepath.Dir(from), filepath.FromSlash(file))
		if r, err := filepath.Rel(root, dest); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
			t.Errorf("%s: %q points outside the repository", where, target)
			return
		}
		if _, err := os.Stat(dest); err != nil {
			t.Errorf("%s: %q points to a file that does not exist", where, target)
			return
		}
	}
	if anchor != "" && strings.HasSuffix(dest, ".md") {
		b, err := os.ReadFile(dest)
		if err != nil {
			t.Errorf("%s: %q: %v", where, target, err)
			return
		}
		if !anchors(string(b))[anchor] {
			t.Errorf("%s: %q: no heading with the anchor #%s in %s", where, target, anchor, filepath.Base(dest))
		}
	}
}
