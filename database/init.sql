-- Run once, on a private socket, right after initdb. No passwords: the role logs in
-- only through peer authentication.
CREATE ROLE apiuser LOGIN;
CREATE DATABASE cultivate OWNER apiuser;
REVOKE ALL ON DATABASE cultivate FROM PUBLIC;
