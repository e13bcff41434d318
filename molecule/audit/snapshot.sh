#!/bin/bash
# The state the audit must not change, printed on stdout (run as root):
#   etc    every path under /etc with its type, mode, owner, group, size and, for regular
#          files, its SHA-256: any write, removal, creation or chmod/chown in /etc shows
#   since  every non-directory on the root file system and the /tmp and /var/tmp trees whose
#          content (mtime) or metadata (ctime) changed after MARKER, except what the
#          connection itself touches (see EXCLUDED): directories are left out because
#          their mtime moves whenever anything creates and removes a temporary file inside;
#          /run is not scanned: volatile runtime state (utmp, sudo timestamps, motd.dynamic)
#   dirs   every directory on the same trees (apart from EXCLUDED), to compare before and
#          after: a directory created or removed by the audit shows there
set -euo pipefail
export LC_ALL=C
MARKER=/var/tmp/fleet-audit-test/marker
# Written by the connection, not by the audit: sshd and PAM log every login (wtmp, btmp,
# lastlog), journald stores the log lines, sudo notes a successful admin use
# (~/.sudo_as_admin_successful) and its lecture, and Ansible uses the admin user's ~/.ansible
# as its remote working directory; plus this test's own files.
# And what apt writes when the check-mode package task simulates an install, as it does for
# `apt-get -s`: its planner log and its binary package caches (rebuilt from the lists).
EXCLUDED='^(/var/log/(wtmp|btmp|lastlog|journal/)|/var/lib/lastlog/|/var/lib/sudo/lectured/'
EXCLUDED+='|/root/\.sudo_as_admin_successful$|/home/fleetadmin/(\.sudo_as_admin_successful$|\.ansible/)'
EXCLUDED+='|/var/log/apt/eipp\.log\.xz$|/var/cache/apt/(src)?pkgcache\.bin$|/var/tmp/fleet-audit-test/)'
case "${1:-}" in
  etc)
    find /etc -xdev -printf '%p %y %m %u %g %s\n' | sort
    find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum
    ;;
  since)
    find / /tmp /var/tmp -xdev ! -type d \( -newer "$MARKER" -o -cnewer "$MARKER" \) -print 2>/dev/null \
      | sort -u | grep -Ev "$EXCLUDED" || true
    ;;
  dirs)
    find / /tmp /var/tmp -xdev -type d -print 2>/dev/null | sort -u | grep -Ev "$EXCLUDED" || true
    ;;
  *)
    echo "usage: $0 etc|since|dirs" >&2
    exit 2
    ;;
esac
