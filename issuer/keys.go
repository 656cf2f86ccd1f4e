package issuer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/issuer/subject"
)

// KeyFile is the name of the issuer's key file (seal and day-tag keys) in its data
// directory. It is kept apart from the database, so that a copy of the database alone
// can open no reference; it is readable by the owner only.
const KeyFile = "issuer-keys.json"

// keyStore holds the current keyring and keeps it on disk. Readers take the immutable
// keyring without a lock; maintenance makes a new one, saves it, then publishes it.
type keyStore struct {
	path   string
	policy subject.Policy

	mu  sync.Mutex // serialises maintenance and saving
	cur atomic.Pointer[subject.Keyring]
}

func openKeyStore(path string, p subject.Policy) (*keyStore, error) {
	ks := &keyStore{path: path, policy: p}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		ks.cur.Store(&subject.Keyring{})
	case err != nil:
		return nil, fmt.Errorf("issuer: key file: %w", err)
	default:
		k, err := subject.ParseKeyring(data)
		if err != nil {
			return nil, fmt.Errorf("issuer: key file %s: %w", path, err)
		}
		ks.cur.Store(k)
	}
	return ks, nil
}

// get returns the current keyring.
func (ks *keyStore) get() *subject.Keyring { return ks.cur.Load() }

// maintain rotates and destroys keys as the policy says at now, and saves the keyring
// before anyone can use a new key.
func (ks *keyStore) maintain(now time.Time) (subject.Report, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	k, rep, err := ks.get().Maintain(now, ks.policy)
	if err != nil || !rep.Changed() {
		return rep, err
	}
	if err := ks.save(k); err != nil {
		return subject.Report{}, err
	}
	ks.cur.Store(k)
	return rep, nil
}

// forDay returns a keyring that holds the day key of d, making today's keys first if
// the retention job has not yet run today (the clock may also have jumped, as the
// demo's does).
func (ks *keyStore) forDay(now time.Time, d kipass.Date) (*subject.Keyring, error) {
	if k := ks.get(); k.HasDay(d) && len(k.SealKeys) > 0 {
		return k, nil
	}
	if _, err := ks.maintain(now); err != nil {
		return nil, err
	}
	k := ks.get()
	if !k.HasDay(d) {
		return nil, fmt.Errorf("issuer: no day key for %s", d)
	}
	return k, nil
}

// save writes the keyring atomically: a temporary file, synced, renamed over the old
// one, and the directory synced.
func (ks *keyStore) save(k *subject.Keyring) error {
	data, err := k.Marshal()
	if err != nil {
		return err
	}
	tmp := ks.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("issuer: save keys: %w", err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("issuer: save keys: %w", err)
	}
	if err := os.Rename(tmp, ks.path); err != nil {
		return fmt.Errorf("issuer: save keys: %w", err)
	}
	if d, err := os.Open(filepath.Dir(ks.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
