package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kipass/kipass"
)

// Client calls the central /v1 API: what scanners, the load generator and the tests
// use. Token is the bearer credential (a device's, an operator's...).
type Client struct {
	URL        string       // base URL, e.g. http://127.0.0.1:8080
	Token      string       // bearer credential; empty for public calls
	HTTPClient *http.Client // nil means http.DefaultClient
}

// NewClient returns a client of the server at url with the bearer token.
func NewClient(url, token string) *Client {
	return &Client{URL: strings.TrimRight(url, "/"), Token: token}
}

// ResponseError is an error answer of the API. It unwraps to the *kipass.Error of its
// code, field and message, so kipass.ErrorCode works on it.
type ResponseError struct {
	StatusCode int
	RetryAfter time.Duration // from Retry-After on 429 and 503
	Err        *kipass.Error
}

// Error implements the error interface.
func (e *ResponseError) Error() string {
	return fmt.Sprintf("central: %d: %s", e.StatusCode, e.Err.Message)
}

// Unwrap returns the domain error.
func (e *ResponseError) Unwrap() error { return e.Err }

// Enroll enrols a device with a one-time enrollment code and returns its credential.
func (c *Client) Enroll(ctx context.Context, code, name string) (*EnrollResponse, error) {
	var out EnrollResponse
	err := c.do(ctx, "POST", "/v1/devices", &EnrollRequest{Code: code, Name: name}, &out)
	return &out, err
}

// UploadVisits posts a batch of visits and returns the answer for each, in order. A
// 429 comes back as a *ResponseError whose RetryAfter says when to try again.
func (c *Client) UploadVisits(ctx context.Context, visits []*kipass.Visit) ([]kipass.VisitStatus, error) {
	var out UploadResponse
	if err := c.do(ctx, "POST", "/v1/visits", &UploadRequest{Visits: visits}, &out); err != nil {
		return nil, err
	}
	if len(out.Results) != len(visits) {
		return nil, fmt.Errorf("central: %d answers for %d visits", len(out.Results), len(visits))
	}
	return out.Results, nil
}

// Status returns central's public status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var out Status
	err := c.do(ctx, "GET", "/v1/status", nil, &out)
	return &out, err
}

// Bundle fetches the signed trust bundle. With the ETag of the copy held it returns
// (nil, etag, nil) when that copy is current.
func (c *Client) Bundle(ctx context.Context, etag string) (signed []byte, newETag string, err error) {
	req, err := c.request(ctx, "GET", "/v1/bundle", nil)
	if err != nil {
		return nil, "", err
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil, etag, nil
	case http.StatusOK:
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		return b, resp.Header.Get("ETag"), err
	}
	return nil, "", responseError(resp)
}

// CreateFacility registers a facility (operator token).
func (c *Client) CreateFacility(ctx context.Context, f *CreateFacilityRequest) (*kipass.Facility, error) {
	var out kipass.Facility
	err := c.do(ctx, "POST", "/v1/facilities", f, &out)
	return &out, err
}

// CreateEnrollmentCode makes a one-time enrollment code for a facility (operator token).
func (c *Client) CreateEnrollmentCode(ctx context.Context, facilityID string) (*kipass.EnrollmentCode, error) {
	var out kipass.EnrollmentCode
	err := c.do(ctx, "POST", "/v1/facilities/"+facilityID+"/enrollment-codes", nil, &out)
	return &out, err
}

// Do sends a JSON request (in may be nil) and decodes a JSON answer into out (which may
// be nil). An error answer comes back as a *ResponseError.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	return c.do(ctx, method, path, in, out)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("central: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return responseError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("central: decode answer: %w", err)
	}
	return nil
}

func (c *Client) request(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.URL, "/")+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return req, nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return http.DefaultClient
}

// responseError reads an error answer.
func responseError(resp *http.Response) error {
	e := &ResponseError{StatusCode: resp.StatusCode, Err: &kipass.Error{Code: FromErrorStatusCode(resp.StatusCode)}}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		}
	}
	var body ErrorResponse
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
		e.Err.Code, e.Err.Field, e.Err.Message = body.Error.Code, body.Error.Field, body.Error.Message
	} else {
		e.Err.Message = http.StatusText(resp.StatusCode)
	}
	return e
}
