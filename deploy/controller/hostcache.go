package controller

import (
	"context"
	"sync"

	"github.com/kiln-project/kiln/deploy"
)

// tickHost is a host as one tick sees it: its instance list is read once,
// and again only after the tick changed something on it. Listing is not
// cheap (every domain's metadata and state, a storage pool refresh), and a
// tick reads a set's instances after each of its steps; on a small machine
// that is CPU the guests need. Changes made elsewhere show at the next tick.
type tickHost struct {
	deploy.Hypervisor

	mu      sync.Mutex // Apply creates in parallel
	fresh   bool
	owned   []deploy.Instance
	foreign int
}

func (h *tickHost) Instances(ctx context.Context) ([]deploy.Instance, int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.fresh {
		owned, foreign, err := h.Hypervisor.Instances(ctx)
		if err != nil {
			return nil, 0, err
		}
		h.owned, h.foreign, h.fresh = owned, foreign, true
	}
	return append([]deploy.Instance(nil), h.owned...), h.foreign, nil
}

// changed forgets the list: the next Instances reads the host again. It
// is called before the change as well as after, so that a list read while
// the change runs is not kept.
func (h *tickHost) changed() {
	h.mu.Lock()
	h.fresh = false
	h.mu.Unlock()
}

func (h *tickHost) Create(ctx context.Context, spec deploy.InstanceSpec) error {
	h.changed()
	defer h.changed()
	return h.Hypervisor.Create(ctx, spec)
}

func (h *tickHost) Start(ctx context.Context, name string) error {
	h.changed()
	defer h.changed()
	return h.Hypervisor.Start(ctx, name)
}

func (h *tickHost) Restart(ctx context.Context, name string) error {
	h.changed()
	defer h.changed()
	return h.Hypervisor.Restart(ctx, name)
}

func (h *tickHost) Delete(ctx context.Context, name string) error {
	h.changed()
	defer h.changed()
	return h.Hypervisor.Delete(ctx, name)
}

func (h *tickHost) Protect(ctx context.Context, name string, p deploy.Protection) error {
	h.changed()
	defer h.changed()
	return h.Hypervisor.Protect(ctx, name, p)
}
