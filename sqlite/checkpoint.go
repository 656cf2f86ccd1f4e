package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// checkpointer copies the WAL back into the database file on a connection of its
// own. SQLite's default, the automatic checkpoint, runs inside the commit that takes
// the WAL past 1000 pages: at 50 000 visits/s that was five commits a second each
// held up 10 to 60 ms by writing 4 MB and syncing the file, the largest part of the
// ingest benchmark's p99. A passive checkpoint on another connection runs beside
// the writer instead. The WAL restarts from its beginning only when a writer finds
// it wholly copied; if back-to-back commits keep that from happening and the WAL
// passes walLimit pages, a restarting checkpoint waits for the writer once, copies
// the rest (a passive checkpoint just before has copied nearly all) and lets the
// next transaction start the WAL again. It runs on the write connection itself: on
// its own connection it would wait for a lock that back-to-back commits never leave
// free (SQLite's busy handler polls; it does not queue).
type checkpointer struct {
	db       *sql.DB // one connection to the database file, for passive checkpoints
	writer   *sql.DB // the write connection, for restarting ones
	log      *slog.Logger
	walLimit int // pages

	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once

	behind      atomic.Bool  // the WAL is past walLimit
	checkpoints atomic.Int64 // passive checkpoints run
	restarts    atomic.Int64 // restarting checkpoints run
}

// checkpointInterval is the longest a passive checkpoint waits after a commit's
// notice; notices coming faster are merged.
const checkpointInterval = 50 * time.Millisecond

// newCheckpointer opens the checkpoint connection to the database file at path,
// whose write connection is writer, and starts its goroutine.
func newCheckpointer(path, busy string, writer *sql.DB, walLimit int, log *slog.Logger) (*checkpointer, error) {
	db, err := sql.Open("sqlite", path+"?_busy_timeout="+busy+"&_synchronous=FULL&_pragma=cache_size(-256)")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open checkpointer: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	c := &checkpointer{db: db, writer: writer, log: log, walLimit: walLimit,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go c.run()
	return c, nil
}

// notify tells the checkpointer that a transaction committed.
func (c *checkpointer) notify() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// close stops the goroutine and closes the connection.
func (c *checkpointer) close() error {
	c.once.Do(func() { close(c.stop) })
	<-c.stopped
	return c.db.Close()
}

func (c *checkpointer) run() {
	defer close(c.stopped)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-c.stop
		cancel()
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.wake:
		case <-tick.C:
		}
		if err := c.checkpoint(ctx); err != nil && ctx.Err() == nil {
			c.log.Error("WAL checkpoint failed", "err", err)
		}
		if c.behind.Load() {
			continue // past the limit: no pause
		}
		select {
		case <-c.stop:
			return
		case <-time.After(checkpointInterval):
		}
	}
}

// checkpoint runs one passive checkpoint, and a restarting one when the WAL has
// grown past walLimit pages.
func (c *checkpointer) checkpoint(ctx context.Context) error {
	var busy, frames, copied int
	if err := c.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil {
		return err
	}
	c.checkpoints.Add(1)
	c.behind.Store(frames >= c.walLimit)
	// A restarting checkpoint holds the writer while it copies what the passive one
	// left: wait for a passive one that left little, unless the WAL is far past its
	// limit (back-to-back commits that passive checkpoints cannot catch up with).
	if frames < c.walLimit || frames-copied > c.walLimit/16 && frames < 4*c.walLimit {
		return nil
	}
	if err := c.writer.QueryRowContext(ctx, `PRAGMA wal_checkpoint(RESTART)`).Scan(&busy, &frames, &copied); err != nil {
		return err
	}
	if busy != 0 {
		return errors.New("restarting checkpoint could not finish: a reader or writer held on")
	}
	c.restarts.Add(1)
	c.behind.Store(false)
	return nil
}
