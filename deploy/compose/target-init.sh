#!/bin/bash
# Target server, first start only (docker-entrypoint-initdb.d): the account
# sluice applies changes with. It owns the replicated schema shop_copy (which
# replicated DDL creates on demand) and sluice's own sluice_meta (checkpoint,
# term), and nothing else.
mariadb --protocol=socket -uroot -p"$MARIADB_ROOT_PASSWORD" <<SQL
CREATE USER 'sluice'@'%' IDENTIFIED BY '${DST_PASSWORD//\'/\'\'}';
GRANT ALL PRIVILEGES ON shop_copy.* TO 'sluice'@'%';
GRANT ALL PRIVILEGES ON sluice_meta.* TO 'sluice'@'%';
SQL
