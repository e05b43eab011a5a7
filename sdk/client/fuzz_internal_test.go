package client

import (
	"encoding/json"
	"encoding/pem"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseStat: /proc/PID/stat of a process whose command name (comm)
// its owner chose: whatever it holds is an error or a parse, never a
// panic, and a parse holds the fields as written.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte("16935 (cat) R 16888 16888 10437 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 81094 3133440 411 18446744073709551615"))
	f.Add([]byte("1 (a) b) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 7 0"))
	f.Add([]byte("2 (x"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseStat(b)
		if err != nil {
			if st != (procStatus{}) {
				t.Fatalf("a status %+v with error %v", st, err)
			}
			return
		}
		if st.state == 0 || strconv.Itoa(st.pgrp) == "" {
			t.Fatalf("parsed %+v", st)
		}
	})
}

func TestParseStatReadsTheStartTime(t *testing.T) {
	st, err := parseStat([]byte("7 (a (b) c) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 424242 0 0"))
	if err != nil || st.state != 'S' || st.pgrp != 7 || st.startTime != 424242 {
		t.Fatalf("parsed %+v, %v; want state S, pgrp 7, start 424242", st, err)
	}
	if _, err := parseStat([]byte("7 (a) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0")); err == nil {
		t.Error("a stat without a start time parsed")
	}
}

// validState is a well-formed ReattachState (of no running process).
func validState(t testing.TB) ReattachState {
	certPEM, keyPEM, err := newClientIdentity()
	if err != nil {
		t.Fatal(err)
	}
	serverPEM, _, err := newClientIdentity()
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(serverPEM)
	return ReattachState{
		Backend: "echo", Path: "/opt/tthost/plugins/tthost-backend-echo", Checksum: strings.Repeat("ab", 32),
		Pid: 4242, StartTime: 777, Instance: "00112233445566778899aabb", ProtocolVersion: 1,
		Network: "unix", Addr: "/tmp/tthost-plugin-1/plugin1", SocketDir: "/tmp/tthost-plugin-1",
		ClientCertPEM: string(certPEM), ClientKeyPEM: string(keyPEM), ServerCertDER: block.Bytes, WindowMS: 60000,
	}
}

// FuzzParseReattachState: the state a host keeps for its successor is
// read back after a restart and may be damaged: whatever it holds is an
// error or a state that passes Validate, never a panic.
func FuzzParseReattachState(f *testing.F) {
	valid, err := json.Marshal(validState(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"pid":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseReattachState(b)
		if err != nil {
			return
		}
		if verr := st.Validate(); verr != nil {
			t.Fatalf("parsed a state that does not validate: %v", verr)
		}
	})
}

func TestParseReattachStateSaysWhichFieldIsWrong(t *testing.T) {
	good := validState(t)
	b, _ := json.Marshal(good)
	if _, err := ParseReattachState(b); err != nil {
		t.Fatalf("a valid state: %v", err)
	}
	cases := map[string]func(*ReattachState){
		"backend":          func(s *ReattachState) { s.Backend = "" },
		"path":             func(s *ReattachState) { s.Path = "relative/p" },
		"checksum":         func(s *ReattachState) { s.Checksum = "abc" },
		"pid":              func(s *ReattachState) { s.Pid = 1 },
		"start_time":       func(s *ReattachState) { s.StartTime = 0 },
		"instance":         func(s *ReattachState) { s.Instance = "x=y" },
		"protocol_version": func(s *ReattachState) { s.ProtocolVersion = 0 },
		"network":          func(s *ReattachState) { s.Network = "tcp" },
		"socket_dir":       func(s *ReattachState) { s.SocketDir = "/home"; s.Addr = "/home/plugin1" },
		"addr":             func(s *ReattachState) { s.Addr = "/tmp/elsewhere/plugin1" },
		"client_cert_pem":  func(s *ReattachState) { s.ClientKeyPEM = "" },
		"server_cert_der":  func(s *ReattachState) { s.ServerCertDER = []byte{1, 2} },
		"window_ms":        func(s *ReattachState) { s.WindowMS = 0 },
	}
	for field, edit := range cases {
		st := good
		edit(&st)
		b, _ := json.Marshal(st)
		if _, err := ParseReattachState(b); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: got %v, want an error naming the field", field, err)
		}
	}
	if _, err := ParseReattachState([]byte("{")); err == nil || !strings.Contains(err.Error(), "JSON") {
		t.Errorf("broken JSON: %v", err)
	}
}
