package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kipass/kipass"
)

// Client timeouts. An issuer falls back to its cache when the registry does not
// answer, so a call must fail fast rather than hang.
const (
	DefaultClientTimeout = 2 * time.Second // a whole call, whatever the HTTP client's own timeout
	dialTimeout          = time.Second
	maxResponseSize      = 1 << 20
)

// Client calls the registry API. Person is what issuers use; the other methods are for
// operators and tests. A Client is safe for concurrent use.
type Client struct {
	baseURL string
	token   string
	hc      *http.Client

	// Timeout bounds each call, including connecting and reading the answer
	// (default DefaultClientTimeout). Set it before the first call.
	Timeout time.Duration
}

// NewClient returns a client of the registry at baseURL (e.g. http://127.0.0.1:8090)
// with a bearer token. A nil hc selects a client with short connect and header
// timeouts; any hc is bounded by Timeout per call.
func NewClient(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   dialTimeout,
			ResponseHeaderTimeout: DefaultClientTimeout,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
		}}
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), token: token, hc: hc, Timeout: DefaultClientTimeout}
}

// Person returns the holder facts of one person. Its errors carry kipass codes:
// ENOTFOUND when the registry has no such person; EUNAVAILABLE when the registry
// cannot be reached, does not answer within Timeout, sheds load or fails (5xx), so that
// the caller falls back to cached facts; EUNAUTHORIZED or EFORBIDDEN for a bad token;
// EINVALID for a malformed id. When ctx is cancelled (not merely past its deadline),
// ctx's error is returned.
func (c *Client) Person(ctx context.Context, id string) (*Record, error) {
	var rec Record
	if err := c.do(ctx, http.MethodGet, "/v1/persons/"+url.PathEscape(id), nil, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// PersonRecord returns the whole record of one person (admin token).
func (c *Client) PersonRecord(ctx context.Context, id string) (*Person, error) {
	var p Person
	if err := c.do(ctx, http.MethodGet, "/v1/persons/"+url.PathEscape(id)+"/record", nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// PutPerson creates or replaces one record (admin token) and returns it as stored.
func (c *Client) PutPerson(ctx context.Context, p *Person) (*Person, error) {
	in := *p
	in.UpdatedAt = time.Time{}
	var out Person
	if err := c.do(ctx, http.MethodPut, "/v1/persons/"+url.PathEscape(p.PersonID), &in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AddDose records one dose (admin token) and returns the record.
func (c *Client) AddDose(ctx context.Context, id string, d kipass.Dose) (*Person, error) {
	return c.add(ctx, id, "doses", d)
}

// AddTest records one test result (admin token) and returns the record.
func (c *Client) AddTest(ctx context.Context, id string, t kipass.Test) (*Person, error) {
	return c.add(ctx, id, "tests", t)
}

// AddRecovery records one release from isolation (admin token) and returns the record.
func (c *Client) AddRecovery(ctx context.Context, id string, day kipass.Date) (*Person, error) {
	return c.add(ctx, id, "recoveries", map[string]kipass.Date{"date": day})
}

func (c *Client) add(ctx context.Context, id, what string, body any) (*Person, error) {
	var p Person
	if err := c.do(ctx, http.MethodPost, "/v1/persons/"+url.PathEscape(id)+"/"+what, body, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// do makes one call within Timeout and decodes a 2xx answer into out.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultClientTimeout
	}
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("registry: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(callCtx, method, c.baseURL+path, body)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		return c.transportError(ctx, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			return unavailableErr("the registry answered a malformed body", err)
		}
		return nil
	}
	return responseError(resp.StatusCode, data)
}

// transportError classifies a failure to get an answer: the caller's cancellation
// stays what it is; anything else (refused, reset, timed out, the caller's deadline
// passed) is EUNAVAILABLE.
func (c *Client) transportError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("registry: %w", ctx.Err())
	}
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return unavailableErr("the registry did not answer in time", err)
	}
	return unavailableErr("the registry cannot be reached", err)
}

// unavailableErr is an EUNAVAILABLE error that also wraps its cause for the logs.
func unavailableErr(msg string, cause error) error {
	return fmt.Errorf("registry: %w: %w", kipass.Errorf(kipass.EUNAVAILABLE, "%s", msg), cause)
}

// responseError turns an error answer into a domain error. Overload (429) and server
// failures (5xx) are EUNAVAILABLE whatever the body says.
func responseError(status int, body []byte) error {
	var er ErrorResponse
	json.Unmarshal(body, &er)
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		return fmt.Errorf("registry: HTTP %d: %w", status, kipass.Errorf(kipass.EUNAVAILABLE, "the registry is unavailable (HTTP %d)", status))
	case er.Error.Code != "":
		return fmt.Errorf("registry: HTTP %d: %w", status, &kipass.Error{Code: er.Error.Code, Field: er.Error.Field, Message: er.Error.Message})
	}
	code := kipass.EINTERNAL
	for k, v := range codes {
		if v == status {
			code = k
		}
	}
	return fmt.Errorf("registry: HTTP %d: %w", status, kipass.Errorf(code, "the registry answered HTTP %d", status))
}
