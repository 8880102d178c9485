package commands

import (
	"fmt"
	"runtime/debug"
	"sync"
)

// Version is acli's version line, read from the build information Go
// embeds: the module version (a tag when installed with go install, else
// "(devel)"), the VCS revision and time, and the Go release.
var Version = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "acli (unknown version)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ", modified"
			}
		}
	}
	line := "acli " + v
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		line += fmt.Sprintf(" (commit %s, %s%s)", rev, at, dirty)
	}
	return line + " " + bi.GoVersion
})
