DROP TABLE billing_outbox;
DROP TABLE billing_marks;
DROP TABLE billing_state;
DROP TABLE api_servers;
