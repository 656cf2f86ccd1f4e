package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// WAL checkpoints run here, on a connection of their own, instead of inside the
// commit that happens to cross SQLite's autocheckpoint threshold: copying pages into
// the database file and syncing it would otherwise stall one group commit, and every
// batch waiting on it, for the length of the checkpoint.

// walRestartFrames is the WAL size, in pages, past which the checkpointer stops being
// polite: a RESTART checkpoint waits for the writer, finishes and lets the next
// transaction start the WAL over, so the file cannot grow without bound under load.
const walRestartFrames = 16384 // 64 MiB of 4 KiB pages

// checkpointInterval is how often the checkpointer copies committed pages back.
const checkpointInterval = 500 * time.Millisecond

// checkpointer runs PASSIVE checkpoints every checkpointInterval until stop closes.
func (db *DB) checkpointer(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			// A failed checkpoint is retried at the next tick; the WAL keeps
			// every committed page until one succeeds.
			db.checkpoint(context.Background(), "PASSIVE")
		}
	}
}

// checkpoint runs one checkpoint in mode, escalating a PASSIVE one to RESTART when the
// WAL has grown past walRestartFrames.
func (db *DB) checkpoint(ctx context.Context, mode string) error {
	var busy, frames, done int
	err := db.ckpt.QueryRowContext(ctx, `PRAGMA wal_checkpoint(`+mode+`)`).Scan(&busy, &frames, &done)
	if err != nil {
		return err
	}
	if mode == "PASSIVE" && frames > walRestartFrames {
		return db.checkpoint(ctx, "RESTART")
	}
	return nil
}

// openCheckpointer opens the checkpoint connection and starts the checkpointer.
func (db *DB) openCheckpointer(dsn string) error {
	var err error
	if db.ckpt, err = sql.Open("sqlite", dsn); err != nil {
		return err
	}
	db.ckpt.SetMaxOpenConns(1)
	db.ckpt.SetConnMaxIdleTime(0)
	db.ckptStop, db.ckptDone = make(chan struct{}), make(chan struct{})
	go db.checkpointer(db.ckptStop, db.ckptDone)
	return nil
}

// closeCheckpointer stops the checkpointer and folds the whole WAL back into the
// database file, so that a closed database is one file.
func (db *DB) closeCheckpointer() error {
	close(db.ckptStop)
	<-db.ckptDone
	db.checkpoint(context.Background(), "TRUNCATE")
	return db.ckpt.Close()
}
