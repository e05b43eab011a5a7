package pluginstore

import (
	"bytes"
	"errors"
	"io/fs"
)

// ChecksumState is what re-hashing a plugin binary found.
type ChecksumState string

// Checksum states, as `tthost plugin list` and `verify` print them.
const (
	// ChecksumOK: the file's SHA-256 is the recorded one.
	ChecksumOK ChecksumState = "ok"
	// ChecksumMismatch: the file changed since it was recorded; the host
	// refuses to launch it.
	ChecksumMismatch ChecksumState = "MISMATCH"
	// ChecksumMissingFile: a checksum is recorded but the file is gone.
	ChecksumMissingFile ChecksumState = "missing file"
	// ChecksumNone: a binary nobody recorded a checksum for; the host
	// refuses to launch it.
	ChecksumNone ChecksumState = "no checksum"
	// ChecksumUnreadable: the file exists but could not be read.
	ChecksumUnreadable ChecksumState = "unreadable"
)

// Failed reports whether the state makes `tthost plugin verify` fail.
func (s ChecksumState) Failed() bool { return s != ChecksumOK }

// VerifyChecksum re-hashes the candidate's binary and compares it with the
// recorded checksum. got is the file's SHA-256 when it could be read.
func (c Candidate) VerifyChecksum() (state ChecksumState, got []byte, err error) {
	got, err = FileSHA256(c.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ChecksumMissingFile, nil, nil
	case err != nil:
		return ChecksumUnreadable, nil, err
	case c.Checksum == nil:
		return ChecksumNone, got, nil
	case !bytes.Equal(got, c.Checksum):
		return ChecksumMismatch, got, nil
	}
	return ChecksumOK, got, nil
}
