package pluginstore

import (
	"bytes"
	"context"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// tlsServer serves body at /plugin over TLS on loopback and returns the
// server and a PEM file of its certificate to trust.
func tlsServer(t *testing.T, body []byte) (*httptest.Server, string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/plugin", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	mux.HandleFunc("/to-http", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:1/plugin", http.StatusFound)
	})
	srv := httptest.NewUnstartedServer(mux)
	// The untrusted-certificate case makes the server log a handshake error.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return srv, ca
}

func TestFetchDownloadsOverTrustedHTTPSOnly(t *testing.T) {
	body := bytes.Repeat([]byte("plugin"), 300_000)
	srv, ca := tlsServer(t, body)
	ctx := context.Background()

	var buf bytes.Buffer
	var reports, last int64
	n, err := Fetch(ctx, srv.URL+"/plugin", &buf, FetchOptions{CACertFile: ca, Progress: func(done, total int64) {
		reports++
		if total != int64(len(body)) || done < last {
			t.Errorf("progress %d/%d after %d", done, total, last)
		}
		last = done
	}})
	if err != nil || n != int64(len(body)) || !bytes.Equal(buf.Bytes(), body) {
		t.Fatalf("fetched %d bytes (%v)", n, err)
	}
	if reports < 2 || last != int64(len(body)) {
		t.Errorf("%d progress reports ending at %d", reports, last)
	}

	cases := []struct{ name, url, ca, says string }{
		{"an untrusted certificate", srv.URL + "/plugin", "", "certificate"},
		{"plain http", strings.Replace(srv.URL, "https", "http", 1) + "/plugin", ca, "https:// only"},
		{"a redirect to plain http", srv.URL + "/to-http", ca, "not https"},
		{"a missing file", srv.URL + "/nothing", ca, "404"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Fetch(ctx, c.url, &bytes.Buffer{}, FetchOptions{CACertFile: c.ca})
			if err == nil || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("err = %v; want one saying %q", err, c.says)
			}
		})
	}
	if _, err := Fetch(ctx, srv.URL+"/plugin", &bytes.Buffer{}, FetchOptions{CACertFile: filepath.Join(t.TempDir(), "none.pem")}); err == nil {
		t.Error("a missing CA file was accepted")
	}
}
