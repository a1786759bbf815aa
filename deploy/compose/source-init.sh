#!/bin/bash
# Source server, first start only (docker-entrypoint-initdb.d): the
# replication account sluice connects with, and the demo schema `shop`.
# Sourced or run by the mysql image's entrypoint while its temporary server
# listens on the socket only.
mysql --protocol=socket -uroot -p"$MYSQL_ROOT_PASSWORD" <<SQL
CREATE USER 'repl'@'%' IDENTIFIED BY '${SRC_PASSWORD//\'/\'\'}';
-- Reading the binlog as a replica, plus SELECT for schema lookups.
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'repl'@'%';
CREATE DATABASE IF NOT EXISTS shop;
SQL
