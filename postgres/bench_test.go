package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/postgres"
	"github.com/kipass/kipass/storetest"
)

// openBench opens a DB with default options on a new database.
func openBench(b *testing.B) *postgres.DB {
	b.Helper()
	db, err := postgres.Open(context.Background(), createDatabase(b))
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

// BenchmarkRawInsert is the insert ceiling: COPY of the same rows into visit_ids and
// visits, one transaction per batch, no queue.
func BenchmarkRawInsert(b *testing.B) {
	for _, batch := range []int{100, 5000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db := openBench(b)
			storetest.BenchRawInsert(b, func(ctx context.Context, vs []*kipass.Visit) error {
				return postgres.RawInsert(ctx, db, vs, batch)
			})
		})
	}
}
