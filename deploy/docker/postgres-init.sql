-- One database per service (run once by the postgres image on an empty volume).
CREATE DATABASE dibao_intake;
CREATE DATABASE dibao_assessment;
CREATE DATABASE dibao_publicity;
CREATE DATABASE dibao_payments;
CREATE DATABASE dibao_audit;
