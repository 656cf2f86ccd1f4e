package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/sqlite"
	"github.com/kipass/kipass/storetest"
)

// openBench opens a DB with default options in a temporary file.
func openBench(b *testing.B) *sqlite.DB {
	b.Helper()
	db, err := sqlite.Open(filepath.Join(b.TempDir(), "central.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkStoreVisits is durable ingest through the group committer: 64 goroutines
// storing batches of 100, as devices uploading at once.
func BenchmarkStoreVisits(b *testing.B) {
	storetest.BenchStoreVisits(b, openBench(b), 64, 100)
}

// BenchmarkRawInsert is the insert ceiling: plain multi-row INSERTs of the same rows,
// one transaction per batch, no queue.
func BenchmarkRawInsert(b *testing.B) {
	for _, batch := range []int{100, 5000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db := openBench(b)
			storetest.BenchRawInsert(b, func(ctx context.Context, vs []*kipass.Visit) error {
				return sqlite.RawInsert(ctx, db, vs, batch)
			})
		})
	}
}
