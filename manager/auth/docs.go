package auth

import (
	"fmt"
	"strings"
)

// RolesMarkdown is docs/reference/roles.md: every RPC and the least role it
// needs, generated from the table by make docs.
func RolesMarkdown() string {
	var b strings.Builder
	b.WriteString("# Roles\n\nGenerated from manager/auth's role table by `make docs`; do not edit.\n\n")
	b.WriteString("Roles nest: an operator may do what a viewer may, an admin what an operator may. ")
	b.WriteString("A client certificate's CN is the user and its O the role; a token carries its user and role. ")
	b.WriteString("A call above the caller's role is refused with PermissionDenied (acli exit 4) naming the role it needs, ")
	b.WriteString("and written to the audit log.\n\n")
	b.WriteString("| RPC | Role |\n|---|---|\n")
	for _, m := range Methods() {
		r, _ := RoleFor(m)
		fmt.Fprintf(&b, "| `%s` | %s |\n", strings.TrimPrefix(m, "/"), r)
	}
	return b.String()
}
