-- Extra databases on the stack's PostgreSQL: Airflow's and MLflow's metadata live beside the
-- warehouse (database replenish, created by the image from POSTGRES_DB).
CREATE DATABASE airflow OWNER replenish;
CREATE DATABASE mlflow OWNER replenish;
