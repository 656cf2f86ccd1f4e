package kipass

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"
)

// AuditEntry is one answered investigator query in an append-only, hash-chained log:
// Hash commits to PrevHash and every other field, so a changed or removed row breaks
// the chain.
type AuditEntry struct {
	Seq      int64     `json:"seq"`
	At       time.Time `json:"at"`
	Actor    string    `json:"actor"`  // who asked (investigator credential name)
	Action   string    `json:"action"` // what was asked, e.g. "visits_by_day_tags"
	CaseID   string    `json:"case_id"`
	Reason   string    `json:"reason"`
	Query    string    `json:"query"` // the query's parameters, canonical JSON
	PrevHash []byte    `json:"prev_hash"`
	Hash     []byte    `json:"hash"`
}

// AuditService is a hash-chained audit log.
type AuditService interface {
	// AppendAudit fills in Seq, PrevHash and Hash and appends e atomically. A zero At
	// is set to the current time; At is truncated to the microsecond (the precision
	// stores keep) before the hash is computed.
	AppendAudit(ctx context.Context, e *AuditEntry) error
	// ListAudit returns the entries at or after from and before to, in order.
	ListAudit(ctx context.Context, from, to time.Time) ([]*AuditEntry, error)
	// VerifyAudit walks the whole chain and returns an error naming the first broken
	// entry: an *AuditChainError when the chain itself is broken.
	VerifyAudit(ctx context.Context) error
}

// AuditChainError reports the first entry at which an audit chain fails to verify: a
// changed row (its hash no longer matches), a removed row (a gap in Seq) or a broken
// link (PrevHash is not the previous entry's Hash).
type AuditChainError struct {
	Seq    int64
	Reason string
}

// Error implements the error interface.
func (e *AuditChainError) Error() string {
	return fmt.Sprintf("audit chain broken at seq %d: %s", e.Seq, e.Reason)
}

// Notice is a message from the operators to every venue ("uploads delayed").
type Notice struct {
	ID        string     `json:"id"`
	Level     string     `json:"level"` // info, warning, critical
	MessageKO string     `json:"message_ko"`
	MessageEN string     `json:"message_en,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
}

// NoticeService stores operator notices. Notices live in the database so that every
// stateless node serves the same ones.
type NoticeService interface {
	// CreateNotice stores n. An empty ID is filled with a random one and a zero
	// CreatedAt with the current time; a taken ID is ECONFLICT.
	CreateNotice(ctx context.Context, n *Notice) error
	// EndNotice ends the notice at at. An unknown id is ENOTFOUND; ending an ended
	// notice keeps the first end and is not an error.
	EndNotice(ctx context.Context, id string, at time.Time) error
	// ListActiveNotices returns the notices not ended, oldest first.
	ListActiveNotices(ctx context.Context) ([]*Notice, error)
}

// ComputeHash returns the chain hash of e: SHA-256 over PrevHash and every field but
// Hash, each length-prefixed so that no two entries encode alike.
func (e *AuditEntry) ComputeHash() []byte {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], uint64(e.Seq))
	field(seq[:])
	field([]byte(e.At.UTC().Format(time.RFC3339Nano)))
	field([]byte(e.Actor))
	field([]byte(e.Action))
	field([]byte(e.CaseID))
	field([]byte(e.Reason))
	field([]byte(e.Query))
	field(e.PrevHash)
	return h.Sum(nil)
}

// VerifyLink checks e against prev, the entry before it in the chain (nil when e
// should be the first), and returns an *AuditChainError if the chain breaks at e: a
// Seq that does not follow (an entry removed), a PrevHash that is not prev's Hash, or a
// Hash that does not match e's content.
func (e *AuditEntry) VerifyLink(prev *AuditEntry) error {
	wantSeq, wantPrev := int64(1), []byte{}
	if prev != nil {
		wantSeq, wantPrev = prev.Seq+1, prev.Hash
	}
	switch {
	case e.Seq != wantSeq:
		return &AuditChainError{Seq: wantSeq, Reason: fmt.Sprintf("entry missing (next stored entry is %d)", e.Seq)}
	case !bytes.Equal(e.PrevHash, wantPrev):
		return &AuditChainError{Seq: e.Seq, Reason: "previous hash does not match the previous entry"}
	case !bytes.Equal(e.Hash, e.ComputeHash()):
		return &AuditChainError{Seq: e.Seq, Reason: "hash does not match the entry's content"}
	}
	return nil
}
