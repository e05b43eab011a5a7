package pluginstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

// MaxDownload bounds a plugin download, so a wrong URL cannot fill the
// disk.
const MaxDownload = 1 << 30

// FetchOptions says how to download a plugin.
type FetchOptions struct {
	// CACertFile is a PEM file of extra certificate authorities to trust
	// (for a private mirror; the tests' local server).
	CACertFile string
	// Progress, when set, is called as bytes arrive: done so far and the
	// total (-1 when the server did not say).
	Progress func(done, total int64)
}

// Fetch downloads an https:// URL into w and returns the byte count. Plain
// http and redirects to it are refused: the checksum would catch a
// changed file, but a plugin install should not depend on the network
// path being honest.
func Fetch(ctx context.Context, rawURL string, w io.Writer, o FetchOptions) (int64, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return 0, fmt.Errorf("cannot download %q: plugins are downloaded over https:// only", rawURL)
	}
	tlsConfig, err := tlsConfigWith(o.CACertFile)
	if err != nil {
		return 0, err
	}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	defer transport.CloseIdleConnections()
	hc := &http.Client{
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" {
				return fmt.Errorf("redirected to %s, which is not https", req.URL.Redacted())
			}
			if len(via) >= 10 {
				return errors.New("more than 10 redirects")
			}
			return nil
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("download %s: the server answered %s", u.Redacted(), resp.Status)
	}
	total := resp.ContentLength
	if total > MaxDownload {
		return 0, fmt.Errorf("download %s: it is %d bytes, more than a plugin may be (%d)", u.Redacted(), total, MaxDownload)
	}
	pw := &progressWriter{w: w, total: total, report: o.Progress}
	if pw.report != nil {
		pw.report(0, total)
	}
	n, err := io.Copy(pw, io.LimitReader(resp.Body, MaxDownload+1))
	switch {
	case err != nil:
		return n, fmt.Errorf("download %s: %w after %d bytes", u.Redacted(), err, n)
	case n > MaxDownload:
		return n, fmt.Errorf("download %s: more than %d bytes, more than a plugin may be", u.Redacted(), int64(MaxDownload))
	case total >= 0 && n != total:
		return n, fmt.Errorf("download %s: got %d of %d bytes", u.Redacted(), n, total)
	}
	return n, nil
}

// tlsConfigWith trusts the system's authorities plus those in caFile.
func tlsConfigWith(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read the CA certificate file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// progressWriter reports the bytes written through it.
type progressWriter struct {
	w           io.Writer
	done, total int64
	report      func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	if p.report != nil {
		p.report(p.done, p.total)
	}
	return n, err
}
