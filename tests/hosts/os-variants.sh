# shellcheck shell=sh disable=SC2034 # sets variables for entrypoint.sh
# Sourced by entrypoint.sh. Release files and package managers of each imitated OS.
# The os-release texts follow what those systems ship.

# The variants, for the entrypoint's check and its error message.
OS_VARIANTS="ubuntu debian rhel8 rhel9 centos rocky alma fedora amzn2 amzn2023 sles opensuse-leap alpine unknown redhat-release-only debian-version-only no-release"

os_release() {
    mkdir -p /usr/lib
    cat >/usr/lib/os-release
    ln -sf ../usr/lib/os-release /etc/os-release
}

# Writes the release files of variant $1 and sets MANAGERS (the package managers it has).
write_os_variant() {
    MANAGERS=
    case $1 in
    ubuntu)
        MANAGERS="apt-get apt"
        echo "bookworm/sid" >/etc/debian_version
        os_release <<'R'
PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=jammy
R
        ;;
    debian)
        MANAGERS="apt-get apt"
        echo "12.5" >/etc/debian_version
        # Debian's own file has no ID_LIKE.
        os_release <<'R'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
R
        ;;
    rhel8)
        MANAGERS="yum"
        echo "Red Hat Enterprise Linux release 8.9 (Ootpa)" >/etc/redhat-release
        os_release <<'R'
NAME="Red Hat Enterprise Linux"
VERSION="8.9 (Ootpa)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="8.9"
PLATFORM_ID="platform:el8"
PRETTY_NAME="Red Hat Enterprise Linux 8.9 (Ootpa)"
ANSI_COLOR="0;31"
CPE_NAME="cpe:/o:redhat:enterprise_linux:8::baseos"
HOME_URL="https://www.redhat.com/"
BUG_REPORT_URL="https://bugzilla.redhat.com/"
R
        ;;
    rhel9)
        MANAGERS="dnf"
        echo "Red Hat Enterprise Linux release 9.3 (Plow)" >/etc/redhat-release
        os_release <<'R'
NAME="Red Hat Enterprise Linux"
VERSION="9.3 (Plow)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Red Hat Enterprise Linux 9.3 (Plow)"
ANSI_COLOR="0;31"
CPE_NAME="cpe:/o:redhat:enterprise_linux:9::baseos"
HOME_URL="https://www.redhat.com/"
BUG_REPORT_URL="https://bugzilla.redhat.com/"
R
        ;;
    centos)
        MANAGERS="dnf"
        echo "CentOS Stream release 9" >/etc/redhat-release
        os_release <<'R'
NAME="CentOS Stream"
VERSION="9"
ID="centos"
ID_LIKE="rhel fedora"
VERSION_ID="9"
PLATFORM_ID="platform:el9"
PRETTY_NAME="CentOS Stream 9"
ANSI_COLOR="0;31"
CPE_NAME="cpe:/o:centos:centos:9"
HOME_URL="https://centos.org/"
BUG_REPORT_URL="https://issues.redhat.com/"
R
        ;;
    rocky)
        MANAGERS="dnf"
        echo "Rocky Linux release 9.3 (Blue Onyx)" >/etc/redhat-release
        os_release <<'R'
NAME="Rocky Linux"
VERSION="9.3 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"
ANSI_COLOR="0;32"
CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
HOME_URL="https://rockylinux.org/"
BUG_REPORT_URL="https://bugs.rockylinux.org/"
R
        ;;
    alma | almalinux)
        MANAGERS="dnf"
        echo "AlmaLinux release 9.3 (Shamrock Pampas Cat)" >/etc/redhat-release
        os_release <<'R'
NAME="AlmaLinux"
VERSION="9.3 (Shamrock Pampas Cat)"
ID="almalinux"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="AlmaLinux 9.3 (Shamrock Pampas Cat)"
ANSI_COLOR="0;34"
CPE_NAME="cpe:/o:almalinux:almalinux:9::baseos"
HOME_URL="https://almalinux.org/"
BUG_REPORT_URL="https://bugs.almalinux.org/"
R
        ;;
    fedora)
        MANAGERS="dnf"
        echo "Fedora release 39 (Thirty Nine)" >/etc/redhat-release
        # Fedora's own file has no ID_LIKE.
        os_release <<'R'
NAME="Fedora Linux"
VERSION="39 (Server Edition)"
ID=fedora
VERSION_ID=39
VERSION_CODENAME=""
PLATFORM_ID="platform:f39"
PRETTY_NAME="Fedora Linux 39 (Server Edition)"
ANSI_COLOR="0;38;2;60;110;180"
CPE_NAME="cpe:/o:fedoraproject:fedora:39"
HOME_URL="https://fedoraproject.org/"
BUG_REPORT_URL="https://bugzilla.redhat.com/"
VARIANT="Server Edition"
VARIANT_ID=server
R
        ;;
    amzn2)
        MANAGERS="yum"
        echo "Amazon Linux release 2 (Karoo)" >/etc/system-release
        os_release <<'R'
NAME="Amazon Linux"
VERSION="2"
ID="amzn"
ID_LIKE="centos rhel fedora"
VERSION_ID="2"
PRETTY_NAME="Amazon Linux 2"
ANSI_COLOR="0;33"
CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2"
HOME_URL="https://amazonlinux.com/"
R
        ;;
    amzn2023)
        MANAGERS="dnf"
        echo "Amazon Linux release 2023.3.20240117 (Amazon Linux)" >/etc/system-release
        os_release <<'R'
NAME="Amazon Linux"
VERSION="2023"
ID="amzn"
ID_LIKE="fedora"
VERSION_ID="2023"
PLATFORM_ID="platform:al2023"
PRETTY_NAME="Amazon Linux 2023.3.20240117"
ANSI_COLOR="0;33"
CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2023"
HOME_URL="https://aws.amazon.com/linux/amazon-linux-2023/"
SUPPORT_END="2028-03-15"
R
        ;;
    sles)
        MANAGERS="zypper"
        os_release <<'R'
NAME="SLES"
VERSION="15-SP5"
VERSION_ID="15.5"
PRETTY_NAME="SUSE Linux Enterprise Server 15 SP5"
ID="sles"
ID_LIKE="suse"
ANSI_COLOR="0;32"
CPE_NAME="cpe:/o:suse:sles:15:sp5"
DOCUMENTATION_URL="https://documentation.suse.com/"
R
        ;;
    opensuse-leap)
        MANAGERS="zypper"
        os_release <<'R'
NAME="openSUSE Leap"
VERSION="15.5"
ID="opensuse-leap"
ID_LIKE="suse opensuse"
VERSION_ID="15.5"
PRETTY_NAME="openSUSE Leap 15.5"
ANSI_COLOR="0;32"
CPE_NAME="cpe:/o:opensuse:leap:15.5"
BUG_REPORT_URL="https://bugs.opensuse.org"
HOME_URL="https://www.opensuse.org/"
DOCUMENTATION_URL="https://en.opensuse.org/Portal:Leap"
LOGO="distributor-logo-Leap"
R
        ;;
    alpine)
        MANAGERS="apk"
        echo "3.19.1" >/etc/alpine-release
        # Alpine's own file has no ID_LIKE.
        os_release <<'R'
NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.19.1
PRETTY_NAME="Alpine Linux v3.19"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
R
        ;;
    unknown)
        os_release <<'R'
NAME="Plan 9"
ID=plan9
ID_LIKE=unix
VERSION_ID=4
VERSION="4th edition"
PRETTY_NAME="Plan 9 from Bell Labs 4th edition"
R
        ;;
    redhat-release-only)
        MANAGERS="yum"
        echo "Red Hat Enterprise Linux release 8.9 (Ootpa)" >/etc/redhat-release
        ;;
    debian-version-only)
        MANAGERS="apt-get apt"
        echo "12.5" >/etc/debian_version
        ;;
    no-release)
        ;;
    *)
        return 1
        ;;
    esac
}
