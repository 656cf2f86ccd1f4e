package trace

import (
	"context"
	"fmt"
	"sort"

	"github.com/kipass/kipass"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/issuer"
	"github.com/kipass/kipass/seal"
)

// resolve names the person behind each visit it can, by visit id: QR visits through
// the issuer of their key id, safe numbers through every issuer until one knows them,
// sealed phone numbers by opening them here with the private key.
func resolve(ctx context.Context, cfg Config, tc kiphttp.TraceCase, visits []*kipass.Visit, progress func(string)) (map[string]person, error) {
	out := map[string]person{}
	byKey := map[string][]*kipass.Visit{}
	var safe []*kipass.Visit
	var sealed int
	for _, v := range visits {
		switch {
		case v.Method == kipass.MethodQR && len(v.SRef) > 0:
			byKey[v.IssuerKeyID] = append(byKey[v.IssuerKeyID], v)
		case v.Method == kipass.MethodSafeNumber && v.SafeNumber != "":
			safe = append(safe, v)
		case len(v.Contact) > 0:
			sealed++
			phone, err := seal.Open(cfg.SealKey, seal.InfoContact, v.Contact)
			if err != nil {
				continue // not sealed to this key: counted as unresolved
			}
			out[v.ID] = person{Phone: normalize(string(phone))}
		}
	}
	if sealed > 0 {
		progress(fmt.Sprintf("opened %d sealed phone numbers locally", sealed))
	}
	itc := issuer.TraceCase{CaseID: tc.CaseID, Reason: tc.Reason}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, kid := range keys {
		vs := byKey[kid]
		cl := cfg.Issuer
		if c := cfg.IssuersByKey[kid]; c != nil {
			cl = c
		}
		progress(fmt.Sprintf("issuer %s: resolving %d pass references", kid, len(vs)))
		for i := 0; i < len(vs); i += issuer.MaxResolveItems {
			chunk := vs[i:min(i+issuer.MaxResolveItems, len(vs))]
			req := issuer.ResolveRequest{TraceCase: itc, SRefs: make([][]byte, len(chunk)), SafeNumbers: []string{}}
			for j, v := range chunk {
				req.SRefs[j] = v.SRef
			}
			var resp issuer.ResolveResponse
			if err := cl.Do(ctx, "POST", "/v1/trace/resolve", req, &resp); err != nil {
				return nil, fmt.Errorf("issuer %s: resolve: %w", kid, err)
			}
			if len(resp.Results) != len(chunk) {
				return nil, fmt.Errorf("issuer %s: %d answers for %d references", kid, len(resp.Results), len(chunk))
			}
			for j, r := range resp.Results {
				if r.Found {
					out[chunk[j].ID] = person{Name: r.Name, Phone: normalize(r.Phone)}
				}
			}
		}
	}
	if len(safe) == 0 {
		return out, nil
	}
	// A safe number does not say its issuer: ask each issuer for the ones still open.
	progress(fmt.Sprintf("resolving %d safe numbers", len(safe)))
	for _, cl := range issuerClients(cfg) {
		var left []*kipass.Visit
		for _, v := range safe {
			if _, ok := out[v.ID]; !ok {
				left = append(left, v)
			}
		}
		for i := 0; i < len(left); i += issuer.MaxResolveItems {
			chunk := left[i:min(i+issuer.MaxResolveItems, len(left))]
			req := issuer.ResolveRequest{TraceCase: itc, SRefs: [][]byte{}, SafeNumbers: make([]string, len(chunk))}
			for j, v := range chunk {
				req.SafeNumbers[j] = v.SafeNumber
			}
			var resp issuer.ResolveResponse
			if err := cl.Do(ctx, "POST", "/v1/trace/resolve", req, &resp); err != nil {
				return nil, fmt.Errorf("issuer: resolve safe numbers: %w", err)
			}
			if len(resp.Results) != len(chunk) {
				return nil, fmt.Errorf("issuer: %d answers for %d safe numbers", len(resp.Results), len(chunk))
			}
			for j, r := range resp.Results {
				if r.Found {
					out[chunk[j].ID] = person{Name: r.Name, Phone: normalize(r.Phone)}
				}
			}
		}
	}
	return out, nil
}

// issuerClients returns each distinct issuer client once: Issuer first, then the
// others by key id.
func issuerClients(cfg Config) []*kiphttp.Client {
	seen := map[string]bool{cfg.Issuer.URL: true}
	out := []*kiphttp.Client{cfg.Issuer}
	keys := make([]string, 0, len(cfg.IssuersByKey))
	for k := range cfg.IssuersByKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if c := cfg.IssuersByKey[k]; c != nil && !seen[c.URL] {
			seen[c.URL] = true
			out = append(out, c)
		}
	}
	return out
}
