package deploy

import (
	"context"
	"errors"
	"io"
	"sort"
	"sync"
)

// fakeHost is an in-memory hypervisor: instances, the volumes they own,
// and foreign domains. failAfter makes the n-th Create die half-way (its
// overlay made, no domain), as a kill -9 would leave it.
type fakeHost struct {
	uri       string
	mu        sync.Mutex
	domains   map[string]Instance
	volumes   map[string]Metadata // instance -> overlay (and seed)
	foreign   int
	creates   int
	failAfter int // 0: never
	log       []string
}

func newFakeHost(uri string) *fakeHost {
	return &fakeHost{uri: uri, domains: map[string]Instance{}, volumes: map[string]Metadata{}}
}

var errKilled = errors.New("killed half-way")

func (f *fakeHost) URI() string { return f.uri }

func (f *fakeHost) Instances(ctx context.Context) ([]Instance, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Instance
	for _, d := range f.domains {
		out = append(out, d)
	}
	for name, m := range f.volumes {
		if _, ok := f.domains[name]; !ok {
			out = append(out, Instance{Name: name, Host: f.uri, State: Partial, Meta: m})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, f.foreign, nil
}

func (f *fakeHost) Create(ctx context.Context, s InstanceSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates++
	f.volumes[s.Name] = s.Meta
	if f.failAfter > 0 && f.creates == f.failAfter {
		return errKilled
	}
	f.domains[s.Name] = Instance{Name: s.Name, Host: f.uri, State: Running, Meta: s.Meta}
	f.log = append(f.log, "create "+s.Name)
	return nil
}

func (f *fakeHost) Start(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.domains[name]
	if !ok {
		return errors.New("no domain " + name)
	}
	d.State = Running
	f.domains[name] = d
	f.log = append(f.log, "start "+name)
	return nil
}

func (f *fakeHost) Restart(ctx context.Context, name string) error { return f.Start(ctx, name) }

func (f *fakeHost) Delete(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.domains, name)
	delete(f.volumes, name)
	f.log = append(f.log, "delete "+name)
	return nil
}

func (f *fakeHost) Console(ctx context.Context, name string, offset int64, w io.Writer) (int64, error) {
	return offset, nil
}

func (f *fakeHost) Stats(ctx context.Context, name string) (Stats, error) {
	return Stats{VCPUs: 1}, nil
}

func (f *fakeHost) Protect(ctx context.Context, name string, p Protection) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.domains[name]
	if !ok {
		return errors.New("no domain " + name)
	}
	d.Meta.Protect = p.String()
	f.domains[name] = d
	return nil
}
