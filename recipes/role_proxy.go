package recipes

import (
	"fmt"
	"net"
	"strconv"
	"time"
)

func init() {
	registerRole(roleDef{
		name:    "proxy",
		summary: "HAProxy load balancer / reverse proxy: frontends, health-checked backends, round robin or least connections, a stats page",
		new: func() RoleParams {
			return &Proxy{Stats: &ProxyStats{Port: 8404, Path: "/stats"}, MaxConn: 4096}
		},
	})
}

// Proxy is the proxy role (HAProxy).
type Proxy struct {
	Frontends []ProxyFrontend `yaml:"frontends" doc:"ports the proxy listens on, each with its backend servers"`
	Stats     *ProxyStats     `yaml:"stats" doc:"HAProxy stats page (also answers /healthz); null to turn it off"`
	MaxConn   int             `yaml:"maxConn" doc:"maximum concurrent connections"`
}

// ProxyFrontend is one listening port and the servers behind it.
type ProxyFrontend struct {
	Name       string   `yaml:"name" doc:"frontend name; default web, web2, ..."`
	Listen     int      `yaml:"listen" doc:"port to listen on"`
	Bind       string   `yaml:"bind" doc:"address to bind; default all (*)"`
	Mode       string   `yaml:"mode" doc:"http (default) or tcp"`
	Balance    string   `yaml:"balance" doc:"roundrobin (default), leastconn or source"`
	Servers    []string `yaml:"servers" doc:"backend servers as host:port"`
	HealthPath string   `yaml:"healthPath" doc:"HTTP path probed on each server (http mode); empty for a TCP connect check"`
	Interval   Duration `yaml:"interval" doc:"health check interval; default 2s"`
	Fall       int      `yaml:"fall" doc:"failed checks before a server is taken out; default 2"`
	Rise       int      `yaml:"rise" doc:"passed checks before it is put back; default 2"`
	Timeout    Duration `yaml:"timeout" doc:"client and server inactivity timeout; default 30s"`
}

// ProxyStats is the stats page.
type ProxyStats struct {
	Port int    `yaml:"port" doc:"stats port"`
	Bind string `yaml:"bind" doc:"address to bind; default all (*)"`
	Path string `yaml:"path" doc:"stats page path"`
}

func (p *Proxy) validate(v *validator) {
	if len(p.Frontends) == 0 {
		v.errorf("frontends", "list at least one frontend (listen and servers)")
	}
	ports := map[int]string{}
	names := map[string]bool{}
	for i, f := range p.Frontends {
		fp := fmt.Sprintf("frontends[%d]", i)
		v.port(fp+".listen", f.Listen)
		if prev, dup := ports[f.Listen]; dup {
			v.errorf(fp+".listen", "port %d is already used by %s", f.Listen, prev)
		}
		ports[f.Listen] = fp
		name := frontendName(f, i)
		if !pgIdentRE.MatchString(name) && !nameRE.MatchString(name) {
			v.errorf(fp+".name", "invalid name %q", name)
		}
		if names[name] {
			v.errorf(fp+".name", "frontend %q is defined twice", name)
		}
		names[name] = true
		switch f.Mode {
		case "", "http", "tcp":
		default:
			v.errorf(fp+".mode", "unknown mode %q (want http or tcp)", f.Mode)
		}
		switch f.Balance {
		case "", "roundrobin", "leastconn", "source":
		default:
			v.errorf(fp+".balance", "unknown balance %q (want roundrobin, leastconn or source)", f.Balance)
		}
		if f.Bind != "" && net.ParseIP(f.Bind) == nil {
			v.errorf(fp+".bind", "invalid address %q", f.Bind)
		}
		if len(f.Servers) == 0 {
			v.errorf(fp+".servers", "list at least one backend server (host:port)")
		}
		for j, s := range f.Servers {
			host, port, err := net.SplitHostPort(s)
			n, perr := strconv.Atoi(port)
			if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
				v.errorf(fmt.Sprintf("%s.servers[%d]", fp, j), "invalid server %q (want host:port)", s)
			}
		}
		if f.HealthPath != "" && (f.HealthPath[0] != '/' || f.Mode == "tcp") {
			v.errorf(fp+".healthPath", "healthPath must start with / and needs mode http")
		}
		if f.Fall < 0 || f.Rise < 0 {
			v.errorf(fp, "fall and rise must not be negative")
		}
	}
	if s := p.Stats; s != nil {
		v.port("stats.port", s.Port)
		if _, dup := ports[s.Port]; dup {
			v.errorf("stats.port", "port %d is also a frontend's", s.Port)
		}
		if s.Path == "" || s.Path[0] != '/' {
			v.errorf("stats.path", "path %q must start with /", s.Path)
		}
		if s.Bind != "" && net.ParseIP(s.Bind) == nil {
			v.errorf("stats.bind", "invalid address %q", s.Bind)
		}
	}
	if p.MaxConn < 1 {
		v.errorf("maxConn", "must be at least 1")
	}
}

func frontendName(f ProxyFrontend, i int) string {
	if f.Name != "" {
		return f.Name
	}
	if i == 0 {
		return "web"
	}
	return fmt.Sprintf("web%d", i+1)
}

func (p *Proxy) contribute(c *contribution) error {
	type fe struct {
		Name, Mode, Bind, Balance, HealthPath string
		Listen, IntervalMs, Fall, Rise        int
		Servers                               []string
	}
	var fes []fe
	timeout := 30 * time.Second
	for i, f := range p.Frontends {
		x := fe{Name: frontendName(f, i), Mode: or(f.Mode, "http"), Bind: or(f.Bind, "*"), Balance: or(f.Balance, "roundrobin"),
			HealthPath: f.HealthPath, Listen: f.Listen, Fall: orInt(f.Fall, 2), Rise: orInt(f.Rise, 2), Servers: f.Servers,
			IntervalMs: int(orDuration(f.Interval, 2*time.Second) / time.Millisecond)}
		if f.Timeout != 0 {
			timeout = max(timeout, f.Timeout.D())
		}
		fes = append(fes, x)
		c.check(tcpCheck("proxy "+x.Name+" listening", f.Bind, true, f.Listen))
	}
	var stats any
	if s := p.Stats; s != nil {
		stats = map[string]any{"Port": s.Port, "Path": s.Path, "Bind": or(s.Bind, "*")}
		c.check(httpCheck("proxy stats", s.Bind, true, s.Port, "/healthz", 200))
	}
	cfg, err := render("haproxy.cfg", map[string]any{
		"Frontends": fes, "Stats": stats, "MaxConn": p.MaxConn,
		"ConnectTimeout": 5000, "ClientTimeout": timeout.Milliseconds(), "ServerTimeout": timeout.Milliseconds(), "CheckTimeout": 2000,
	})
	if err != nil {
		return err
	}
	c.file("/etc/haproxy/haproxy.cfg", 0o644, cfg)
	c.packages("haproxy")
	c.unit("haproxy.service", "", true)
	c.check(Check{Name: "haproxy config valid", Command: &CommandCheck{Run: Command{Argv: []string{"haproxy", "-c", "-q", "-f", "/etc/haproxy/haproxy.cfg"}}}})
	return nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orInt(i, def int) int {
	if i == 0 {
		return def
	}
	return i
}

func orDuration(d Duration, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d.D()
}
