DROP TABLE home_leftovers;
DROP TABLE homes;
