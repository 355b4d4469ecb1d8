#!/bin/sh
# sw_vers of the simulated macOS host.
case ${1:-} in
"") printf 'ProductName:\t\tmacOS\nProductVersion:\t\t14.4.1\nBuildVersion:\t\t23E224\n' ;;
-productName | --productName) echo macOS ;;
-productVersion | --productVersion) echo 14.4.1 ;;
-buildVersion | --buildVersion) echo 23E224 ;;
*)
    echo "Usage: sw_vers [-productName|-productVersion|-productVersionExtra|-buildVersion]" >&2
    exit 1
    ;;
esac
