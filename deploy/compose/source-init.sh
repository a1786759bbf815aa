#!/bin/bash
# Source server, first start only (docker-entrypoint-initdb.d): the
# replication account sluice connects with, and the demo schema `shop`.
# Sourced or run by the mariadb image's entrypoint while its temporary server
# listens on the socket only.
mariadb --protocol=socket -uroot -p"$MARIADB_ROOT_PASSWORD" <<SQL
CREATE USER 'repl'@'%' IDENTIFIED BY '${SRC_PASSWORD//\'/\'\'}';
-- Reading the binlog as a replica, SELECT for schema lookups, and REPLICATION
-- MASTER ADMIN so that sluice can list the replicas (SHOW SLAVE HOSTS) and
-- refuse a server_id another replica uses.
GRANT REPLICATION SLAVE, REPLICATION CLIENT, REPLICATION MASTER ADMIN, SELECT ON *.* TO 'repl'@'%';
CREATE DATABASE IF NOT EXISTS shop;
SQL
