package reattach

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk/client"
)

// selfSigned makes a certificate and key in PEM, like the host's own.
func selfSigned(t testing.TB) (certPEM, keyPEM, der []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"}, SerialNumber: big.NewInt(1),
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), der
}

func sampleState(t testing.TB) State {
	cert, key, _ := selfSigned(t)
	_, _, server := selfSigned(t)
	plugin := client.ReattachState{
		Backend: "echo", Path: "/opt/tthost/plugins/tthost-backend-echo", Checksum: strings.Repeat("0f", 32),
		Pid: 4242, StartTime: 777, Instance: "00112233445566778899aabb", ProtocolVersion: 1,
		Network: "unix", Addr: "/tmp/tthost-plugin-7/plugin1", SocketDir: "/tmp/tthost-plugin-7",
		ClientCertPEM: string(cert), ClientKeyPEM: string(key), ServerCertDER: server, WindowMS: 60000,
	}
	return State{
		Version: Version, Owner: "serve:host-1", HostPID: 99,
		Written: time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC),
		Plugins: map[string]client.ReattachState{"echo-1": plugin},
		Sessions: []Session{{AgentID: "a-1", AgentName: "alice", Instance: "echo-1", Backend: "echo",
			SessionID: "s-1", LastSeq: 12}},
	}
}

func TestSaveAndLoadKeepTheStatePrivate(t *testing.T) {
	town := t.TempDir()
	path := Path(town, "serve:host-1")
	if want := filepath.Join(town, ".tt", "tthost", "reattach"); filepath.Dir(path) != want {
		t.Fatalf("path %s is not in %s", path, want)
	}
	st := sampleState(t)
	if err := Save(path, st); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Errorf("loaded %+v\nwant %+v", got, st)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	// A second save replaces the file whole and leaves no temp file.
	st.Sessions = nil
	if err := Save(path, st); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(path); err != nil || len(got.Sessions) != 0 {
		t.Errorf("after a second save: %+v, %v", got.Sessions, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("the directory holds %d entries, want only the state file", len(entries))
	}

	if err := Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("load a removed state: %v, want fs.ErrNotExist", err)
	}
	if err := Remove(path); err != nil {
		t.Errorf("remove a missing state: %v", err)
	}
}

func TestSaveRefusesAnInvalidState(t *testing.T) {
	st := sampleState(t)
	st.HostPID = 0
	path := filepath.Join(t.TempDir(), "x.json")
	if err := Save(path, st); err == nil || !strings.Contains(err.Error(), "host_pid") {
		t.Errorf("save: %v, want an error naming host_pid", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an invalid state was written: %v", err)
	}
}

func TestLoadRefusesAFileOthersCouldReadOrWrite(t *testing.T) {
	path := Path(t.TempDir(), "agent-loop:a-1")
	if err := Save(path, sampleState(t)); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o620} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "remove it") {
			t.Errorf("mode %v: %v, want a refusal naming the file and the fix", mode, err)
		}
	}

	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(filepath.Dir(path), "link.json")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("a symlink: %v, want it refused", err)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkFile(path, fi, os.Getuid()+1); err == nil || !strings.Contains(err.Error(), "owned by user") {
		t.Errorf("a file of another user: %v, want it refused", err)
	}
	if err := checkFile(path, fi, os.Getuid()); err != nil {
		t.Errorf("this user's private file: %v", err)
	}
}

func TestLoadSaysWhatIsWrongWithADamagedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.json")
	if err := os.WriteFile(path, []byte(`{"version":1`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "JSON") {
		t.Errorf("broken JSON: %v", err)
	}
}

func TestParseStateValidatesEveryField(t *testing.T) {
	cases := map[string]func(*State){
		"version":    func(s *State) { s.Version = 2 },
		"owner":      func(s *State) { s.Owner = "" },
		"host_pid":   func(s *State) { s.HostPID = -1 },
		"written":    func(s *State) { s.Written = time.Time{} },
		"checksum":   func(s *State) { p := s.Plugins["echo-1"]; p.Checksum = "nope"; s.Plugins["echo-1"] = p },
		"instance":   func(s *State) { s.Plugins[""] = s.Plugins["echo-1"] },
		"session_id": func(s *State) { s.Sessions[0].SessionID = "" },
		"not list":   func(s *State) { s.Sessions[0].Instance = "other" },
		"backend":    func(s *State) { s.Sessions[0].Backend = "codex" },
	}
	for what, edit := range cases {
		st := sampleState(t)
		edit(&st)
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseState(b); err == nil || !strings.Contains(err.Error(), what) {
			t.Errorf("%s: %v, want an error that says so", what, err)
		}
	}
	st, err := ParseState([]byte(`{"version":1,"owner":"serve:h","host_pid":5,"written":"2026-12-06T20:00:00Z"}`))
	if err != nil || st.Plugins == nil || len(st.Sessions) != 0 {
		t.Errorf("a host with nothing running: %+v, %v", st, err)
	}
}

func TestPathKeepsOwnersApartAndInsideTheDirectory(t *testing.T) {
	dir := filepath.Join("/town", ".tt", "tthost", "reattach")
	seen := map[string]string{}
	for _, owner := range []string{"serve:h1", "serve_h1", "agent-loop:a/../../x", "..", "", "serve-h1"} {
		p := Path("/town", owner)
		if filepath.Dir(p) != dir || !strings.HasSuffix(p, ".json") {
			t.Errorf("owner %q: path %s is not a file in %s", owner, p, dir)
		}
		if other, dup := seen[p]; dup {
			t.Errorf("owners %q and %q share %s", owner, other, p)
		}
		seen[p] = owner
	}
	if p := Path("/town", "serve-h1"); filepath.Base(p) != "serve-h1.json" {
		t.Errorf("a plain owner's file is %s, want serve-h1.json", filepath.Base(p))
	}
}

// FuzzParseState: a state file is read back after a restart and may be
// damaged: whatever it holds is an error or a state that validates,
// never a panic.
func FuzzParseState(f *testing.F) {
	b, err := json.Marshal(sampleState(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"version":1,"owner":"serve:h","host_pid":5,"written":"2026-12-06T20:00:00Z"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add(bytes.Repeat([]byte("["), 100))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseState(data)
		if err != nil {
			return
		}
		if err := st.Validate(); err != nil || st.Plugins == nil {
			t.Fatalf("parsed a state that does not validate: %v", err)
		}
	})
}
