package sqlite

import (
	"context"
	"database/sql"
)

// IndexEntry is one entry of a visit index file, for tests.
type IndexEntry struct {
	Run      int64
	Kind     byte // 'd' day tag, 'f' facility
	Key      []byte
	At       int64 // facility entries: the visit time, unix microseconds
	Rowid    int64
	InBucket bool // the entry is in the bucket its key hashes to
}

// IndexEntries reads every entry of the visit index file db.
func IndexEntries(ctx context.Context, db *sql.DB) ([]IndexEntry, error) {
	rows, err := db.QueryContext(ctx, `SELECT b.id, r.buckets, b.data FROM buckets b JOIN runs r ON r.run = b.id >> 16`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var es []IndexEntry
	for rows.Next() {
		var id, nb int64
		var data []byte
		if err := rows.Scan(&id, &nb, &data); err != nil {
			return nil, err
		}
		err := parseBucket(data, func(kind byte, key []byte, at, rowid int64) {
			es = append(es, IndexEntry{Run: id >> bucketBits, Kind: kind, Key: append([]byte(nil), key...), At: at, Rowid: rowid,
				InBucket: int64(keyHash(kind, key)%uint32(nb)) == id&(1<<bucketBits-1)})
		})
		if err != nil {
			return nil, err
		}
	}
	return es, rows.Err()
}
