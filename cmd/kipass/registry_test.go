package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/demo"
	"github.com/kipass/kipass/registry"
	regsqlite "github.com/kipass/kipass/registry/sqlite"
)

// runKipass runs one command line in-process and returns its exit code and streams.
func runKipass(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return env[k] }}
	code := run(context.Background(), e, args)
	return code, stdout.String(), stderr.String()
}

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const importCSV = "person_id,birth_date,doses\n" +
	"R-0001,1984-03-02,2021-06-10:pfizer;2021-07-22:pfizer\n" +
	"R-0002,1975-02-30,\n" +
	"R-0003,1990-01-01,2021-06-10:sputnik\n" +
	"R-0001,1984-03-02,\n" +
	"R-0004,1999-0"

func TestRegistryImportCommand(t *testing.T) {
	file := writeFile(t, "people.csv", importCSV)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
	}{
		{"ReadToTheEnd", []string{"--now", "2022-01-27T12:00:00+09:00"}, 0, []string{
			"5 rows read, 1 stored, 4 rejected",
			`line 3: birth_date: "1975-02-30" is not a date`,
			`line 4: doses[0].product: unknown vaccine product "sputnik"`,
			`line 5: person_id: "R-0001" is already in this file, on line 2`,
			"line 6: 2 fields, but the header has 3 (the file ends without a line end",
		}},
		{"Strict", []string{"--strict"}, 1, []string{"4 rejected"}},
		{"MaxReported", []string{"--max-reported", "1"}, 0, []string{"... and 3 more rejected rows"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			// Flags after FILE, as docs/registry.md writes them.
			args := append([]string{"registry", "import", file, "--data", data, "--quiet"}, tc.args...)
			code, stdout, stderr := runKipass(t, nil, args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, stdout, stderr)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			st, err := regsqlite.Open(filepath.Join(data, regsqlite.FileName))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if n, _ := st.Count(context.Background()); n != 1 {
				t.Fatalf("%d records in the database, want 1", n)
			}
		})
	}
}

func TestRegistryCommandErrors(t *testing.T) {
	good := writeFile(t, "people.csv", importCSV)
	noHeader := writeFile(t, "people.csv", "R-0001,1984-03-02\n")
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"NoSubcommand", []string{"registry"}, 2},
		{"UnknownSubcommand", []string{"registry", "export"}, 2},
		{"ImportNoFile", []string{"registry", "import"}, 2},
		{"ImportTwoFiles", []string{"registry", "import", good, good}, 2},
		{"ImportBadFormat", []string{"registry", "import", good, "--format", "xml"}, 2},
		{"ImportBadNow", []string{"registry", "import", good, "--now", "today"}, 2},
		{"ImportMissingFile", []string{"registry", "import", filepath.Join(t.TempDir(), "nope.csv")}, 1},
		{"ImportNoHeader", []string{"registry", "import", noHeader}, 1},
		{"SynthNoPeople", []string{"registry", "synth"}, 2},
		{"SynthBadFormat", []string{"registry", "synth", "--people", "1", "--format", "xml"}, 2},
		{"ServeBadIssuerTokens", []string{"serve", "registry", "--issuer-tokens", "nocolon"}, 2},
		{"ServePostgres", []string{"serve", "registry", "--postgres", "postgres://x"}, 2},
		{"ServeExtraArgument", []string{"serve", "registry", "extra"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.args[0] == "registry" && len(tc.args) > 2 && tc.args[1] == "import" {
				args = append(args, "--data", t.TempDir(), "--quiet")
			}
			if code, stdout, stderr := runKipass(t, nil, args...); code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, stdout, stderr)
			}
		})
	}
}

func TestRegistrySynthCommand(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"people.jsonl", "people.csv"} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(dir, name)
			if code, _, stderr := runKipass(t, nil, "registry", "synth", "--people", "2000", "--seed", "9", "--out", out); code != 0 {
				t.Fatalf("synth: exit %d: %s", code, stderr)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Count(string(b), "\n")
			if want := 2000 + map[bool]int{true: 1}[strings.HasSuffix(name, ".csv")]; lines != want {
				t.Fatalf("%d lines, want %d", lines, want)
			}
			code, stdout, stderr := runKipass(t, nil, "registry", "import", "--data", filepath.Join(dir, "data-"+name), "--quiet", "--strict",
				"--now", registry.SynthAt.Format("2006-01-02T15:04:05Z07:00"), out)
			if code != 0 || !strings.Contains(stdout, "2,000 stored, 0 rejected") {
				t.Fatalf("import: exit %d\n%s%s", code, stdout, stderr)
			}
		})
	}
	t.Run("Stdout", func(t *testing.T) {
		code, stdout, _ := runKipass(t, nil, "registry", "synth", "--people", "3", "--format", "csv")
		if code != 0 || !strings.HasPrefix(stdout, "person_id,birth_date,doses,tests,recoveries,exemptions\nS-0000001,") {
			t.Fatalf("exit %d: %q", code, stdout)
		}
	})
	t.Run("DemoClock", func(t *testing.T) {
		if !registry.SynthAt.Equal(demo.Start) {
			t.Fatalf("registry.SynthAt %v is not demo.Start %v", registry.SynthAt, demo.Start)
		}
	})
}

func TestServeRegistry(t *testing.T) {
	env := map[string]string{
		"KIPASS_REGISTRY_ADMIN_TOKEN":   "admin-token",
		"KIPASS_REGISTRY_ISSUER_TOKENS": "naver:naver-token,kakao:kakao-token",
	}
	m := &registryMain{env: &Env{Stderr: &bytes.Buffer{}, Getenv: func(k string) string { return env[k] }}}
	if err := m.ParseFlags([]string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--log-level", "warn"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	resp, err := http.Get(m.URL() + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	ctx := context.Background()
	admin := registry.NewClient(m.URL(), "admin-token", nil)
	p := demo.People()[0]
	if _, err := admin.PutPerson(ctx, &registry.Person{PersonID: p.PersonID, BirthDate: *p.Holder.BirthDate, Doses: p.Holder.Doses}); err != nil {
		t.Fatalf("PutPerson: %v", err)
	}
	kakao := registry.NewClient(m.URL(), "kakao-token", nil)
	if r, err := kakao.Person(ctx, p.PersonID); err != nil || len(r.Holder.Doses) != 3 {
		t.Fatalf("Person = %+v, %v", r, err)
	}
	if _, err := kakao.Person(ctx, "R-9999"); kipass.ErrorCode(err) != kipass.ENOTFOUND {
		t.Fatalf("Person(unknown) = %v, want ENOTFOUND", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := kakao.Person(ctx, p.PersonID); kipass.ErrorCode(err) != kipass.EUNAVAILABLE {
		t.Fatalf("Person after Close = %v, want EUNAVAILABLE", err)
	}
}
