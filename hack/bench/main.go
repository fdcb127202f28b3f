// Command bench runs kiln's benchmarks against the reference tools, in the
// same run on the same machine, and prints each figure with its ratio.
// These machines are noisy: only ratios measured side by side mean anything.
//
//	go run ./hack/bench            # all benchmarks
//	go run ./hack/bench seed       # only those whose name contains "seed"
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/kiln-project/kiln/builder"
)

// benchmark is one comparison. It returns printable lines.
type benchmark struct {
	name string
	run  func() ([]string, error)
}

var benchmarks = []benchmark{
	{"seed-iso", benchSeed},
	{"seed-cli", benchSeedCLI},
	{"bake", benchBake},
	{"boot", benchBoot},
	{"vm-bake", benchVMBake},
	{"registry", benchRegistry},
	{"deploy", benchDeploy},
	{"lb", benchLB},
	{"autoscale", benchAutoscale},
	{"rolling", benchRolling},
	{"diff", benchDiff},
	{"reproducible", benchReproducible},
	{"packer", benchPacker},
}

func main() {
	filter := ""
	if len(os.Args) > 1 {
		filter = os.Args[1]
	}
	failed := false
	for _, b := range benchmarks {
		if filter != "" && !strings.Contains(b.name, filter) {
			continue
		}
		start := time.Now()
		lines, err := b.run()
		if err != nil {
			fmt.Printf("%-12s ERROR %v\n", b.name, err)
			failed = true
			continue
		}
		for _, l := range lines {
			fmt.Printf("%-9s %s\n", b.name, l)
		}
		fmt.Printf("%-12s (benchmark took %s)\n", b.name, time.Since(start).Round(time.Millisecond))
	}
	if failed {
		os.Exit(1)
	}
}

// timeN runs f n times and returns the mean duration per run.
func timeN(n int, f func() error) (time.Duration, error) {
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := f(); err != nil {
			return 0, err
		}
	}
	return time.Since(start) / time.Duration(n), nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }

// benchCache is the kiln cache benchmarks share: $KILN_BENCH_CACHE, or
// kiln's default, so bases are built once.
func benchCache() string {
	if d := os.Getenv("KILN_BENCH_CACHE"); d != "" {
		return d
	}
	return builder.DefaultCacheDir()
}

// bakeExample bakes examples/NAME.yaml with the kiln binary into out,
// through the benchmarks' shared cache (usually a copy of a cached image).
func bakeExample(kiln, name, out string) error {
	if b, err := exec.Command(kiln, "bake", "examples/"+name+".yaml", "-o", out, "--cache-dir", benchCache()).CombinedOutput(); err != nil {
		return fmt.Errorf("bake %s: %v\n%s", name, err, b)
	}
	return nil
}
