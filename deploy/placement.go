package deploy

import "strconv"

// FaultDomainCount is how many fault domains a set of kind k has: with
// several hosts, one per host (no more than the kind allows: the hosts
// past that are not used); on one host, requested, or the kind's default
// when requested is 0 (3 for an AvailabilitySet, 1 for a ScaleSet), kept
// within 1 and the kind's maximum.
func FaultDomainCount(k Kind, requested, hosts int) int {
	most := MaxFaultDomains(k)
	switch {
	case hosts > 1:
		return min(hosts, most)
	case requested == 0 && k == AvailabilitySet:
		return most
	}
	return min(max(requested, 1), most)
}

// InstanceName is the name of a set's instance: web, 2 -> web-2.
func InstanceName(set string, ordinal int) string {
	return set + "-" + strconv.Itoa(ordinal)
}
