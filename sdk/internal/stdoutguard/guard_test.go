package stdoutguard_test

import (
	"testing"

	"github.com/tthost/tthost/sdk/internal/stdoutguard"
	"github.com/tthost/tthost/sdk/internal/wire"
)

func TestNamesMatchTheHandshake(t *testing.T) {
	if stdoutguard.CookieKey != wire.Handshake.MagicCookieKey {
		t.Fatalf("the guard looks for %q but the handshake sets %q", stdoutguard.CookieKey, wire.Handshake.MagicCookieKey)
	}
	if stdoutguard.HostPIDEnv != wire.HostPIDEnv {
		t.Fatalf("the guard looks for %q but the host sets %q", stdoutguard.HostPIDEnv, wire.HostPIDEnv)
	}
}
