package builder

import (
	"io/fs"
	"strconv"
	"strings"
)

// stageLayout is how an image's cloud-init runs its boot stages (local,
// network, config, final). It decides which boot tuning is safe.
type stageLayout int

const (
	// stagesClassic: each stage unit starts its own cloud-init process
	// (cloud-init up to 24.2; Debian 12 has 22.4). A stage can be masked or
	// skipped without the others noticing.
	stagesClassic stageLayout = iota
	// stagesSingleProcess: cloud-init-main.service runs every stage in one
	// process, and the stage units only hand over to it through sockets
	// (cloud-init 24.3 and later; Debian 13 has 25.1). Every stage unit must
	// run, or the stages after it wait forever.
	stagesSingleProcess
)

func (l stageLayout) String() string {
	if l == stagesSingleProcess {
		return "single process (cloud-init ≥ 24.3)"
	}
	return "one process per stage (cloud-init < 24.3)"
}

// singleProcessSince is the first cloud-init release with one process for
// all stages.
var singleProcessSince = [2]int{24, 3}

// detectStageLayout reads a root tree's cloud-init: the packaged version
// where dpkg knows it, and the units themselves, so a cloud-init installed
// some other way is judged by what systemd will run.
func detectStageLayout(fsys fs.FS) stageLayout {
	for _, dir := range []string{"usr/lib/systemd/system", "lib/systemd/system"} {
		if _, err := fs.Stat(fsys, dir+"/cloud-init-main.service"); err == nil {
			return stagesSingleProcess
		}
	}
	if pkgs, err := installedPackages(fsys); err == nil {
		for _, p := range pkgs {
			if p.Name == "cloud-init" && stageLayoutOf(p.Version) == stagesSingleProcess {
				return stagesSingleProcess
			}
		}
	}
	return stagesClassic
}

// stageLayoutOf is the layout of a cloud-init version ("25.1.4-1+deb13u1").
func stageLayoutOf(version string) stageLayout {
	if _, v, ok := strings.Cut(version, ":"); ok { // a Debian epoch
		version = v
	}
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return stagesClassic
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(leadingDigits(parts[1])) // "4~3+deb13", "1-1"
	if err1 != nil || err2 != nil {
		return stagesClassic
	}
	if major > singleProcessSince[0] || major == singleProcessSince[0] && minor >= singleProcessSince[1] {
		return stagesSingleProcess
	}
	return stagesClassic
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}
