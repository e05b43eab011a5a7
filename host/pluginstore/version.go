package pluginstore

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// nameRE is what a backend name may be (sdk.Description.Name): it becomes
// a directory and part of a file name, so nothing else is allowed.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// ValidName reports whether name can be an installed plugin's name.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// semverRE is a semantic version (semver.org 2.0) without a leading "v".
var semverRE = regexp.MustCompile(`^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})` +
	`(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$`)

// NormalizeVersion checks that v is a semantic version ("1.2.3",
// "1.2.3-rc.1", a leading "v" allowed) and returns it without the "v", the
// way it appears in the install layout and the lock file.
func NormalizeVersion(v string) (string, error) {
	s := strings.TrimPrefix(v, "v")
	if len(s) > 64 || !semverRE.MatchString(s) {
		return "", fmt.Errorf("%q is not a semantic version like 1.2.3 or 1.2.3-rc.1", v)
	}
	return s, nil
}

// compareVersions orders two normalized semantic versions (semver.org §11:
// build metadata is ignored, a pre-release sorts before its release).
// Versions that do not parse sort before those that do.
func compareVersions(a, b string) int {
	ma, mb := semverRE.FindStringSubmatch(a), semverRE.FindStringSubmatch(b)
	switch {
	case ma == nil && mb == nil:
		return strings.Compare(a, b)
	case ma == nil:
		return -1
	case mb == nil:
		return 1
	}
	for i := 1; i <= 3; i++ {
		x, _ := strconv.Atoi(ma[i])
		y, _ := strconv.Atoi(mb[i])
		if x != y {
			return cmpInt(x, y)
		}
	}
	switch pa, pb := ma[4], mb[4]; {
	case pa == pb:
		return 0
	case pa == "":
		return 1
	case pb == "":
		return -1
	default:
		return comparePrerelease(pa, pb)
	}
}

func comparePrerelease(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, errX := strconv.ParseUint(as[i], 10, 64)
		y, errY := strconv.ParseUint(bs[i], 10, 64)
		switch {
		case errX == nil && errY == nil:
			if x != y {
				if x < y {
					return -1
				}
				return 1
			}
		case errX == nil: // numeric identifiers sort before alphanumeric ones
			return -1
		case errY == nil:
			return 1
		default:
			if c := strings.Compare(as[i], bs[i]); c != 0 {
				return c
			}
		}
	}
	return cmpInt(len(as), len(bs))
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
