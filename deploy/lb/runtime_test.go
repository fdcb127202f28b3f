package lb

import (
	"reflect"
	"testing"
)

// Answers of HAProxy 2.6.12 (Debian 12), trimmed to a few columns' worth.
const showStatOut = `# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo
web,FRONTEND,,,0,0,9980,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,0,0,0,0,0,0,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,
web,s0,0,0,1,1,,7,0,0,,0,,0,0,0,0,no check,1,1,0,,,5,,,1,3,1,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:19001,,http,
web,s1,0,0,0,0,,3,0,0,,0,,0,0,0,0,DRAIN,1,1,0,,,5,,,1,3,2,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:19002,,http,
web,s2,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1,1,0,,,5,,,1,3,3,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,[::1]:9,,http,
web,BACKEND,0,0,1,1,998,10,0,0,0,0,,0,0,0,0,UP,0,0,0,,0,5,5,,1,3,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin
`

func TestShowStat(t *testing.T) {
	got, err := showStat(showStatOut, "web")
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]slotStat{
		0: {Slot: 0, Addr: "127.0.0.1:19001", Status: "no check", Sessions: 1, Total: 7},
		1: {Slot: 1, Addr: "127.0.0.1:19002", Status: "DRAIN", Sessions: 0, Total: 3},
		2: {Slot: 2, Addr: "[::1]:9", Status: "MAINT", Sessions: 0, Total: 0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("showStat:\n got %+v\nwant %+v", got, want)
	}
	for slot, st := range map[int]State{0: Ready, 1: Drain, 2: Maint} {
		if got[slot].state() != st {
			t.Errorf("s%d %q reads as %s, want %s", slot, got[slot].Status, got[slot].state(), st)
		}
	}
	if _, err := showStat("Unknown command.\n", "web"); err == nil {
		t.Error("showStat accepted an error message")
	}
}

func TestParseShowProc(t *testing.T) {
	out := `#<PID>          <type>          <reloads>       <uptime>        <version>      
17629           master          2 [failed: 1]   0d00h00m11s     2.6.12-1+deb12u4
# workers
17969           worker          0               0d00h00m00s     2.6.12-1+deb12u4
# old workers
17703           worker          1               0d00h00m10s     2.6.12-1+deb12u4
# programs

`
	got, err := parseShowProc(out)
	if err != nil {
		t.Fatal(err)
	}
	want := procs{Workers: []worker{{Pid: 17969}, {Pid: 17703, Old: true}}, Failed: 1}
	if !reflect.DeepEqual(got, want) || got.current() != 17969 {
		t.Errorf("parseShowProc: %+v, want %+v", got, want)
	}
	if _, err := parseShowProc("Unknown command.\n"); err == nil {
		t.Error("parseShowProc accepted an error message")
	}
}

func TestSameAddr(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1:80", "127.0.0.1:80", true},
		{"127.0.0.1:80", "127.0.0.1:81", false},
		{"[::1]:80", "[0:0::1]:80", true},
		{"127.0.0.1:80", "127.0.0.2:80", false},
	} {
		if got := sameAddr(c.a, c.b); got != c.want {
			t.Errorf("sameAddr(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
