package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/authority"
	"github.com/kipass/kipass/demo"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/issuer"
	"github.com/kipass/kipass/policy"
	"github.com/kipass/kipass/registry"
	regsqlite "github.com/kipass/kipass/registry/sqlite"
	"github.com/kipass/kipass/web/console"
)

// The demo's credentials. They are printed at start: a demo has nothing to protect.
const (
	demoAdminToken        = "demo-admin"
	demoInvestigator      = "demo-investigator"
	demoInvestigatorToken = "demo-investigator-token"
	demoAuditorToken      = "demo-auditor"
	demoIssuerToken       = "demo-issuer-registry-token"
	demoPhoneSecret       = "demo-phone-secret"
)

// demoRun holds the running services of `kipass demo`.
type demoRun struct {
	central   *centralMain
	issuer    *issuer.Service
	issuerSrv *http.Server
	regStore  *regsqlite.Store
	regSrv    *registry.Server
	urls      struct{ central, issuer, registry string }
	wallets   map[string]string // person id -> wallet token
	codes     map[string]string // facility name -> enrollment code
}

// startServices starts the registry, the issuer and central, each with its own
// database file under the data directory, and loads the demo data.
func (m *demoMain) startServices(ctx context.Context) (*demoRun, error) {
	r := &demoRun{wallets: map[string]string{}, codes: map[string]string{}}
	logger := newLogger(m.env.Stderr, "text", slog.LevelWarn)
	if err := r.startRegistry(ctx, m, logger); err != nil {
		r.Close()
		return nil, fmt.Errorf("registry: %w", err)
	}
	if err := r.startIssuer(ctx, m, logger); err != nil {
		r.Close()
		return nil, fmt.Errorf("issuer: %w", err)
	}
	if err := r.startCentral(ctx, m); err != nil {
		r.Close()
		return nil, fmt.Errorf("central: %w", err)
	}
	return r, nil
}

func (r *demoRun) startRegistry(ctx context.Context, m *demoMain, logger *slog.Logger) error {
	var err error
	if r.regStore, err = regsqlite.Open(filepath.Join(m.Data, "registry.db")); err != nil {
		return err
	}
	for _, p := range demo.People() {
		if _, err := r.regStore.PutPerson(ctx, registry.FromHolder(p.PersonID, p.Holder)); err != nil {
			return fmt.Errorf("load %s: %w", p.PersonID, err)
		}
	}
	ln, err := net.Listen("tcp", m.RegistryAddr)
	if err != nil {
		return err
	}
	r.regSrv = registry.NewServer(r.regStore, registry.Config{
		AdminTokens: []string{demoAdminToken}, IssuerTokens: map[string]string{"demo-issuer": demoIssuerToken},
		Now: m.now, Logger: logger,
	})
	go r.regSrv.Serve(ln)
	r.urls.registry = "http://" + ln.Addr().String()
	return nil
}

func (r *demoRun) startIssuer(ctx context.Context, m *demoMain, logger *slog.Logger) error {
	var err error
	r.issuer, err = issuer.Open(issuer.Config{
		DataDir:            filepath.Join(m.Data, "issuer"),
		SigningKey:         m.issuerKey,
		Facts:              issuer.RegistryFacts(registry.NewClient(r.urls.registry, demoIssuerToken, nil)),
		Verifier:           &issuer.ConsoleVerifier{Logger: newLogger(m.env.Stderr, "text", slog.LevelInfo), Now: m.now},
		InvestigatorTokens: map[string]string{demoInvestigator: demoInvestigatorToken},
		AuditorToken:       demoAuditorToken,
		Rules:              policy.Default(),
		Now:                m.now,
		Logger:             logger,
	})
	if err != nil {
		return err
	}
	for _, p := range demo.People() {
		tok, err := r.issuer.EnrolDirect(ctx, issuer.Enrolment{Name: p.Name, Phone: p.Phone, BirthDate: *p.Holder.BirthDate, PersonID: p.PersonID})
		if err != nil {
			return fmt.Errorf("enrol %s: %w", p.PersonID, err)
		}
		r.wallets[p.PersonID] = tok
	}
	ln, err := net.Listen("tcp", m.IssuerAddr)
	if err != nil {
		return err
	}
	// The investigator console is served by central, on another port: the issuer
	// lets that origin call its trace API.
	origins := []string{"http://" + m.Addr}
	if _, port, err := net.SplitHostPort(m.Addr); err == nil {
		origins = append(origins, "http://localhost:"+port, "http://127.0.0.1:"+port)
	}
	r.issuerSrv = &http.Server{Handler: console.CORS(r.issuer.Handler(), origins...), ReadHeaderTimeout: 5 * time.Second}
	go r.issuerSrv.Serve(ln)
	r.urls.issuer = "http://" + ln.Addr().String()
	return nil
}

func (r *demoRun) startCentral(ctx context.Context, m *demoMain) error {
	c := newCentralMain(m.env)
	dir := filepath.Join(m.Data, "authority")
	err := c.ParseFlags([]string{
		"--addr", m.Addr, "--data", filepath.Join(m.Data, "central"),
		"--bundle", filepath.Join(dir, authority.DefaultBundle), "--root-key", filepath.Join(dir, authority.RootPubFile),
		"--admin-token", demoAdminToken, "--investigator-tokens", demoInvestigator + ":" + demoInvestigatorToken,
		"--auditor-token", demoAuditorToken, "--phone-secret", demoPhoneSecret, "--log-level", "warn",
	})
	if err != nil {
		return err
	}
	c.Now = m.now
	c.Mounts = m.mounts(r.urls.issuer)
	if err := c.Run(ctx); err != nil {
		return err
	}
	r.central = c
	r.urls.central = c.URL()
	return r.loadFacilities(ctx)
}

// loadFacilities registers the demo venues once and makes a fresh enrollment code for
// each at every start.
func (r *demoRun) loadFacilities(ctx context.Context) error {
	admin := kiphttp.NewClient(r.urls.central, demoAdminToken)
	var list kiphttp.FacilityList
	if err := admin.Do(ctx, "GET", "/v1/facilities", nil, &list); err != nil {
		return err
	}
	existing := list.Facilities
	byNumber := map[string]*kipass.Facility{}
	for _, f := range existing {
		byNumber[f.BusinessNumber] = f
	}
	for _, d := range demo.Facilities() {
		f := byNumber[d.BusinessNumber]
		if f == nil {
			var err error
			f, err = admin.CreateFacility(ctx, &kiphttp.CreateFacilityRequest{Name: d.Name, BusinessNumber: d.BusinessNumber,
				Category: d.Category, Region: d.Region, Address: d.Address, PhoneNumber: d.PhoneNumber})
			if err != nil {
				return fmt.Errorf("facility %s: %w", d.Name, err)
			}
		}
		code, err := admin.CreateEnrollmentCode(ctx, f.ID)
		if err != nil {
			return err
		}
		r.codes[d.Name] = code.Code
	}
	return nil
}

// printURLs tells the user where everything is.
func (r *demoRun) printURLs(m *demoMain) {
	w := m.env.Stdout
	fmt.Fprintf(w, "\nkipass demo is running (demo clock: %s KST). Ctrl-C stops it.\n\n", m.now().In(kipass.KST).Format("2006-01-02 15:04"))
	fmt.Fprintf(w, "  scanner (venue)        %s/scan/\n", r.urls.central)
	if m.hasConsole() {
		fmt.Fprintf(w, "  investigator console   %s/console/\n", r.urls.central)
	}
	fmt.Fprintf(w, "  status                 %s/status  (JSON: /v1/status)\n", r.urls.central)
	fmt.Fprintf(w, "  metrics                %s/metrics\n", r.urls.central)
	fmt.Fprintf(w, "  wallet (visitor)       %s/wallet\n", r.urls.issuer)
	fmt.Fprintf(w, "  registry               %s\n\n", r.urls.registry)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  enrollment code\tcategory\tregion\t안심콜 number\tvenue")
	for _, f := range demo.Facilities() {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", r.codes[f.Name], f.Category, f.Region, f.PhoneNumber, f.Name)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  expected at a gym\twallet link\tvisitor")
	for _, p := range demo.People() {
		fmt.Fprintf(tw, "  %s %s\t%s/wallet#token=%s\t%s\n", p.Expect, p.Basis, r.urls.issuer, r.wallets[p.PersonID], p.Name)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n  tokens: operator %s, investigator %s, auditor %s; the authority's sealing key is %s\n",
		demoAdminToken, demoInvestigatorToken, demoAuditorToken, filepath.Join(m.Data, "authority", authority.SealKeyFile))
	fmt.Fprintf(w, "  kiosk: kipass scan --enroll CODE --central %s --root-key %s --at %s\n\n",
		r.urls.central, filepath.Join(m.Data, "authority", authority.RootPubFile), m.At.Format(time.RFC3339))
}

// Close stops every service, central first so that scanners see it go.
func (r *demoRun) Close() error {
	var errs []error
	if r.central != nil {
		errs = append(errs, r.central.Close())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r.issuerSrv != nil {
		errs = append(errs, r.issuerSrv.Shutdown(ctx))
	}
	if r.issuer != nil {
		errs = append(errs, r.issuer.Close())
	}
	if r.regSrv != nil {
		errs = append(errs, r.regSrv.Shutdown(ctx))
	}
	if r.regStore != nil {
		errs = append(errs, r.regStore.Close())
	}
	return errors.Join(errs...)
}
