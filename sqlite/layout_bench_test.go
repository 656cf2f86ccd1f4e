package sqlite_test

import (
	"crypto/rand"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass"
)

// BenchmarkVisitLayout inserts b.N visits (random day tags, time-ordered ids, 16
// facilities) in transactions of 1 280 rows with plain multi-row INSERTs into three
// table layouts, the reason the SQLite store has a visit index file (docs/storage.md):
//
//	go test ./sqlite -run '^$' -bench VisitLayout -benchtime 1000000x
func BenchmarkVisitLayout(b *testing.B) {
	const table = `CREATE TABLE visits (id TEXT NOT NULL, facility_id TEXT NOT NULL, device_id TEXT NOT NULL,
		at INTEGER NOT NULL, method TEXT NOT NULL, issuer_key_id TEXT NOT NULL, token_id BLOB, sref BLOB, dtag BLOB,
		decision TEXT NOT NULL, basis TEXT NOT NULL, contact BLOB, safe_number TEXT NOT NULL, received_at INTEGER NOT NULL,
		CONSTRAINT visits_pkey UNIQUE (id));`
	layouts := []struct{ name, ddl string }{
		{"first-schema", table + `CREATE INDEX visits_dtag_at ON visits (dtag, at) WHERE dtag IS NOT NULL;
			CREATE INDEX visits_facility_at ON visits (facility_id, at); CREATE INDEX visits_at ON visits (at);`},
		{"no-day-tag-index", table + `CREATE INDEX visits_facility_at ON visits (facility_id, at); CREATE INDEX visits_at ON visits (at);`},
		{"id-and-time", table + `CREATE INDEX visits_at ON visits (at);`},
	}
	for _, l := range layouts {
		b.Run(l.name, func(b *testing.B) {
			db, err := sql.Open("sqlite", filepath.Join(b.TempDir(), "layout.db")+
				"?_txlock=immediate&_journal_mode=WAL&_synchronous=FULL&_pragma=cache_size(-65536)")
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			if _, err := db.Exec(l.ddl); err != nil {
				b.Fatal(err)
			}
			const rows, commit = 128, 1280
			row := "(" + strings.TrimSuffix(strings.Repeat("?,", 14), ",") + ")"
			stmt, err := db.Prepare("INSERT OR IGNORE INTO visits VALUES " + strings.TrimSuffix(strings.Repeat(row+",", rows), ","))
			if err != nil {
				b.Fatal(err)
			}
			defer stmt.Close()
			base := time.Now()
			args := make([]any, 0, rows*14)
			seq := 0
			b.ResetTimer()
			for n := 0; n < b.N; n += commit {
				tx, err := db.Begin()
				if err != nil {
					b.Fatal(err)
				}
				for k := 0; k < commit; k += rows {
					args = args[:0]
					for range rows {
						seq++
						at := base.Add(time.Duration(seq) * 20 * time.Microsecond)
						raw := make([]byte, 68)
						rand.Read(raw)
						args = append(args, kipass.NewVisitID(at), fmt.Sprintf("fac-%d", seq%16), "dev", at.UnixMicro(), "qr", "key",
							raw[:12], raw[12:52], raw[52:], "PASS", "booster", nil, "", base.UnixMicro())
					}
					if _, err := tx.Stmt(stmt).Exec(args...); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/visit")
		})
	}
}
