package client

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// The host makes its own mTLS identity instead of letting go-plugin make
// one (AutoMTLS), so that it can hand the identity to a successor that
// reattaches to the plugin. The plugin side is go-plugin's: given
// PLUGIN_CLIENT_CERT, it makes a server certificate, sends it in the
// handshake line and accepts only clients presenting that client
// certificate.

// clientCertEnv is go-plugin's variable for the host's client certificate.
const clientCertEnv = "PLUGIN_CLIENT_CERT"

// tlsServerName is the name go-plugin's certificates carry.
const tlsServerName = "localhost"

// newClientIdentity makes a self-signed client certificate and its key,
// both PEM, like go-plugin's generateCert.
func newClientIdentity() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, err
	}
	template := &x509.Certificate{
		Subject:               pkix.Name{CommonName: tlsServerName, Organization: []string{"tthost"}},
		DNSNames:              []string{tlsServerName},
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		SerialNumber:          sn,
		NotBefore:             time.Now().Add(-30 * time.Second),
		NotAfter:              time.Now().Add(262980 * time.Hour),
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	var c, k bytes.Buffer
	_ = pem.Encode(&c, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	_ = pem.Encode(&k, &pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return c.Bytes(), k.Bytes(), nil
}

// clientTLS is the host's TLS configuration for a plugin connection. At
// launch pinned is nil: go-plugin fills RootCAs with the server
// certificate from the handshake line. At reattach pinned is the server
// certificate recorded at launch, and the connection is refused unless
// the plugin presents exactly it.
func clientTLS(certPEM, keyPEM, pinned []byte) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("the client certificate: %w", err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ServerName:   tlsServerName,
		MinVersion:   tls.VersionTLS12,
	}
	if pinned != nil {
		server, err := x509.ParseCertificate(pinned)
		if err != nil {
			return nil, fmt.Errorf("the plugin's server certificate: %w", err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(server)
		cfg.RootCAs = pool
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, pinned) {
				return errors.New("the plugin presented another server certificate than the one recorded at launch")
			}
			return nil
		}
	}
	return cfg, nil
}

// peerCert returns the server certificate of the TLS connection a call
// went over, or an error when the connection is not TLS.
func peerCert(pr *peer.Peer) ([]byte, error) {
	if pr == nil || pr.AuthInfo == nil {
		return nil, errors.New("the plugin connection is not TLS; a plugin built with the tthost SDK serves mTLS when given PLUGIN_CLIENT_CERT")
	}
	info, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return nil, fmt.Errorf("the plugin connection is not TLS with a server certificate (%s)", pr.AuthInfo.AuthType())
	}
	return info.State.PeerCertificates[0].Raw, nil
}
