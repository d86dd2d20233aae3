package engine

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentruntime/statejournal/internal/redact"
	"github.com/agentruntime/statejournal/segment"
)

// Every secret here is FAKE and built at run time from parts and a fixed
// generator, so the repository holds no literal token for a secret
// scanner to flag.

const (
	secretB62    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	secretB64URL = secretB62 + "-_"
	secretB64    = secretB62 + "+/"
	secretUpper  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	secretDigits = "0123456789"
)

// secretFake returns n bytes drawn from alphabet by splitmix64 seeded with
// seed, so every value is stable across runs.
func secretFake(seed uint64, n int, alphabet string) string {
	var b strings.Builder
	x := seed*0x9E3779B97F4A7C15 + 0x5EC12E7
	for i := 0; i < n; i++ {
		x += 0x9E3779B97F4A7C15
		z := x
		z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
		z = (z ^ z>>27) * 0x94D049BB133111EB
		z ^= z >> 31
		b.WriteByte(alphabet[z%uint64(len(alphabet))])
	}
	return b.String()
}

// secretCase is one secret as a writer might send it. needles are the
// parts that must never reach disk. byShape says the value is recognised
// wherever it appears; otherwise only the key it sits under gives it away
// and it is sent only under secret-named keys.
type secretCase struct {
	name    string
	value   string
	needles []string
	byShape bool
}

func secretCases() []secretCase {
	var cs []secretCase
	shape := func(name, value string, needles ...string) {
		cs = append(cs, secretCase{name: name, value: value, needles: needles, byShape: true})
	}
	keyOnly := func(name, value string) {
		cs = append(cs, secretCase{name: name, value: value, needles: []string{value}})
	}
	t := secretFake(101, 40, secretB62)
	shape("an Authorization header with a bearer token", "Authorization: Bearer "+t, t)
	t = secretFake(102, 36, secretB64URL)
	shape("a bare bearer credential", "Bearer "+t, t)
	enc := base64.RawURLEncoding
	jwt := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." +
		enc.EncodeToString([]byte(`{"sub":"agent-`+secretFake(103, 8, secretB62)+`","exp":1767225600}`)) + "." + secretFake(104, 86, secretB64URL)
	shape("a JWT", jwt, jwt, jwt[len(jwt)-40:])
	dash := strings.Repeat("-", 5)
	for i, label := range []string{"RSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "PRIVATE KEY"} {
		body := secretFake(uint64(110+i), 64, secretB64)
		pem := dash + "BEGIN " + label + dash + "\n" + body + "\n" + dash + "END " + label + dash
		shape("a PEM "+strings.ToLower(label), pem, body)
	}
	t = "AK" + "IA" + secretFake(120, 16, secretUpper)
	shape("an AWS access key id", t, t)
	t = secretFake(121, 40, secretB64)
	shape("an AWS secret key assigned to its variable", "aws_secret_access_key="+t, t)
	t = "gh" + "p_" + secretFake(122, 36, secretB62)
	shape("a GitHub personal access token", t, t)
	t = "github" + "_pat_" + secretFake(123, 22, secretB62) + "_" + secretFake(124, 59, secretB62)
	shape("a GitHub fine-grained token", t, t)
	t = "gl" + "pat-" + secretFake(125, 20, secretB64URL)
	shape("a GitLab personal access token", t, t)
	t = "xo" + "xb-" + secretFake(126, 12, secretDigits) + "-" + secretFake(127, 13, secretDigits) + "-" + secretFake(128, 24, secretB62)
	shape("a Slack bot token", t, t)
	t = "T" + secretFake(129, 8, secretUpper) + "/B" + secretFake(130, 8, secretUpper) + "/" + secretFake(131, 24, secretB62)
	shape("a Slack webhook URL", "https://hooks.slack.com/services/"+t, t)
	t = "sk" + "_live_" + secretFake(132, 24, secretB62)
	shape("a Stripe live secret key", t, t)
	t = "sk" + "-proj-" + secretFake(133, 48, secretB64URL)
	shape("an OpenAI project key", t, t)
	t = "sk" + "-ant-api03-" + secretFake(134, 93, secretB64URL)
	shape("an Anthropic API key", t, t)
	t = "np" + "m_" + secretFake(135, 36, secretB62)
	shape("an npm token", t, t)
	t = "AI" + "za" + secretFake(136, 35, secretB64URL)
	shape("a GCP API key", t, t)
	pw := secretFake(137, 16, secretB62)
	shape("a database URL with a password", "postgres://journal:"+pw+"@db.internal:5432/state", pw)
	pw = secretFake(138, 14, secretB62)
	user := "deploy-" + secretFake(139, 4, secretDigits)
	cred := base64.StdEncoding.EncodeToString([]byte(user + ":" + pw))
	shape("an Authorization header with basic credentials", "Authorization: Basic "+cred, cred, pw)
	t = secretFake(140, 48, secretB62)
	shape("a long random string", t, t)
	t = secretFake(141, 18, secretB62)
	shape("a password assigned inside a log line", "login failed: password="+t+" user=svc", t)

	keyOnly("a plain passphrase under password", "correct"+"-horse-battery-"+secretFake(150, 6, secretDigits))
	keyOnly("a short word under api_key", "tangerine"+secretFake(151, 3, secretDigits))
	keyOnly("a lowercase word under Authorization", "letmein-"+secretFake(152, 5, "abcdefghij"))
	keyOnly("a readable phrase under client_secret", "purple-"+"monkey-dishwasher-"+secretFake(153, 4, secretDigits))
	keyOnly("a dictionary word under apiKey", "sunflower"+"seeds"+secretFake(154, 2, secretDigits))
	return cs
}

// secretKeys are the secret-named keys every secret is sent under, at the
// top level, nested at depth 2 and inside arrays.
var secretKeys = []string{"password", "api_key", "Authorization", "client_secret", "apiKey"}

// secretChange builds a change carrying sc everywhere it may appear and
// returns it with the least number of redactions the receipt must count.
func secretChange(sc secretCase, i int) (Change, int) {
	c := heartbeat("ws-secret")
	md := map[string]any{}
	want := 0
	for k, key := range secretKeys {
		switch k % 3 {
		case 0:
			md[key] = sc.value
		case 1:
			md["nested_"+key] = map[string]any{key: sc.value, "region": "eu-west-1"}
		case 2:
			md["list_"+key] = []any{map[string]any{key: sc.value}}
		}
		want++
	}
	md["db"] = map[string]any{"password": sc.value}
	md["api_key"] = []any{sc.value, sc.value}
	want += 2 // the array under api_key may count as one value
	if sc.byShape {
		c.AggregateID = sc.value
		c.ArtifactRef = sc.value
		c.CorrelationID = sc.value
		c.CausationID = sc.value
		md["note"] = sc.value
		md["context"] = map[string]any{"detail": "seen " + sc.value}
		md["lines"] = []any{"first line", sc.value}
		want += 4 + 3
	}
	md["case"] = i
	c.Metadata = md
	return c, want
}

// secretFiles reads every file under dir.
func secretFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		files[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// secretLeaks reports where needle occurs in files, or with pieces any
// 12-byte piece of it.
func secretLeaks(files map[string][]byte, needle string, pieces bool) []string {
	var out []string
	look := []string{needle}
	for i := 0; pieces && i+12 <= len(needle); i++ {
		look = append(look, needle[i:i+12])
	}
	for p, b := range files {
		for _, piece := range look {
			if i := bytes.Index(b, []byte(piece)); i >= 0 {
				out = append(out, p+": "+strings.ToValidUTF8(string(b[max(0, i-40):min(len(b), i+len(piece)+40)]), "?"))
				break
			}
		}
	}
	return out
}

func TestSecretsNeverReachDisk(t *testing.T) {
	cases := secretCases()
	if len(cases) < 20 {
		t.Fatalf("only %d secret shapes", len(cases))
	}
	dir := t.TempDir()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, sc := range cases {
		c, want := secretChange(sc, i)
		rc, err := j.Record(ctx, c)
		if err != nil {
			t.Fatalf("%s: Record: %v", sc.name, err)
		}
		if rc.Redactions < want {
			t.Errorf("%s: receipt counts %d redactions, the change carried the secret in at least %d places", sc.name, rc.Redactions, want)
		}
	}
	// One more record carrying every secret, torn by a "crash" so that
	// the next open cuts it into quarantine/ and writes state/.
	all := heartbeat("ws-secret")
	var every, shaped []any
	for _, sc := range cases {
		every = append(every, sc.value)
		if sc.byShape {
			shaped = append(shaped, sc.value)
		}
	}
	all.AggregateID = cases[0].value
	all.Metadata = map[string]any{"password": every, "notes": shaped}
	if _, err := j.Record(ctx, all); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, hotDirName, segment.HotSegmentName(1))
	fi, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	// A crash mid-write leaves no checkpoint over the torn record (one
	// that saw it durable makes the cut a reported loss, not a recovery).
	if err := os.Remove(filepath.Join(dir, stateDirName, checkpointFileName)); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(seg, fi.Size()-20); err != nil {
		t.Fatal(err)
	}
	j2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := j2.Status()
	if st.LastRecovery == nil || len(st.LastRecovery.Cuts) != 1 {
		t.Fatalf("the torn record was not cut into quarantine: %+v", st.LastRecovery)
	}
	res, err := j2.Query(ctx, Query{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := j2.Close(); err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != len(cases) {
		t.Fatalf("%d records read back, want %d", len(res.Changes), len(cases))
	}
	for i, c := range res.Changes {
		if cases[i].byShape && !redact.IsMarker(c.AggregateID) {
			t.Errorf("%s: stored aggregate_id %q is not a redaction marker", cases[i].name, c.AggregateID)
		}
	}

	files := secretFiles(t, dir)
	var dirs []string
	for p := range files {
		dirs = append(dirs, filepath.Base(filepath.Dir(p)))
	}
	for _, want := range []string{hotDirName, stateDirName, quarantineDirName} {
		if !strings.Contains(strings.Join(dirs, " "), want) {
			t.Fatalf("no file under %s/ to check (files in %v)", want, dirs)
		}
	}
	for _, sc := range cases {
		t.Run(sc.name, func(t *testing.T) {
			if leaks := secretLeaks(files, sc.value, false); len(leaks) > 0 {
				t.Fatalf("the value %q reached disk:\n%s", sc.value, strings.Join(leaks, "\n"))
			}
			for _, n := range sc.needles {
				if leaks := secretLeaks(files, n, true); len(leaks) > 0 {
					t.Fatalf("secret %q (or a 12-byte piece of it) reached disk:\n%s", n, strings.Join(leaks, "\n"))
				}
			}
		})
	}
}

func TestOversizeMetadataIsTrimmedMarkedAndStillWritten(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	md := map[string]any{}
	for i := 0; i < 100; i++ {
		md["key_"+string(rune('a'+i/26))+string(rune('a'+i%26))] = i
	}
	md["deep"] = map[string]any{"l2": map[string]any{"l3": map[string]any{"l4": map[string]any{"l5": map[string]any{"l6": "bottom"}}}}}
	md["big"] = strings.Repeat("lorem ipsum ", 10<<10/12+1)
	c := heartbeat("ws-big")
	c.Metadata = md
	rc, err := j.Record(context.Background(), c)
	if err != nil {
		t.Fatalf("oversize metadata was rejected: %v", err)
	}
	if !rc.MetadataTrimmed {
		t.Fatalf("receipt %+v does not say the metadata was trimmed", rc)
	}
	j.Close()

	j2 := openT(t, dir)
	res, err := j2.Query(context.Background(), Query{Limit: -1})
	if err != nil || len(res.Changes) != 1 {
		t.Fatalf("read back: %d changes, %v", len(res.Changes), err)
	}
	got := res.Changes[0].Metadata
	if got[redact.TrimmedKey] != true {
		t.Fatalf("stored metadata is not marked %s: %v", redact.TrimmedKey, got)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	lim := redact.DefaultLimits()
	if len(b) > lim.MaxEncodedBytes {
		t.Fatalf("stored metadata encodes to %d bytes, bound %d", len(b), lim.MaxEncodedBytes)
	}
	keys, depth := secretShape(got, 1)
	if keys > lim.MaxKeys || depth > lim.MaxDepth {
		t.Fatalf("stored metadata has %d keys and depth %d, bounds %d and %d", keys, depth, lim.MaxKeys, lim.MaxDepth)
	}
	t.Logf("stored metadata: %d bytes, %d keys, depth %d", len(b), keys, depth)
}

// secretShape counts the keys of v and its nesting depth (an object or
// array at the top is depth 1).
func secretShape(v any, depth int) (keys, deepest int) {
	deepest = depth
	visit := func(x any) {
		switch x.(type) {
		case map[string]any, []any:
			k, d := secretShape(x, depth+1)
			keys += k
			deepest = max(deepest, d)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			keys++
			visit(e)
		}
	case []any:
		for _, e := range x {
			visit(e)
		}
	}
	return keys, deepest
}
