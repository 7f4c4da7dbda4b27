/* sqlite: an in-memory SQLite database: inserts of generated customers and
 * orders in one transaction through prepared statements, an index built
 * afterwards, then queries: joins, GROUP BY aggregates, ORDER BY with
 * LIMIT, LIKE, a correlated subquery, an UPDATE and a DELETE; each query's
 * rows are folded into a checksum printed with a few of the results.
 * Static libsqlite3 (the bytecode VM, B-tree, pager on :memory:).
 *
 *   sqlite [SCALE]     SCALE (default 1.0) multiplies the number of rows. */
#include <sqlite3.h>

#include "data.h"

#ifndef ORDERS
#define ORDERS 180000
#endif

static sqlite3 *db;

static void die(const char *what)
{
    printf("sqlite: %s: %s\n", what, sqlite3_errmsg(db));
    exit(1);
}

static void exec(const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        printf("sqlite: %s: %s\n", sql, err ? err : "?");
        exit(1);
    }
}

/* Run a query, fold every column of every row (as text) into a CRC-32;
 * print the first `show` rows. */
static uint32_t query(const char *label, const char *sql, int show)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        die(sql);
    uint32_t crc = 0;
    long rows = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int nc = sqlite3_column_count(st);
        if (rows < show)
            printf("  %s:", label);
        for (int i = 0; i < nc; i++) {
            const unsigned char *t = sqlite3_column_text(st, i);
            int len = sqlite3_column_bytes(st, i);
            crc = real_crc32(crc, t ? t : (const unsigned char *)"NULL", t ? (size_t)len : 4);
            crc = real_crc32(crc, (const unsigned char *)"|", 1);
            if (rows < show)
                printf(" %s", t ? (const char *)t : "NULL");
        }
        if (rows < show)
            printf("\n");
        rows++;
    }
    if (rc != SQLITE_DONE)
        die(sql);
    sqlite3_finalize(st);
    printf("sqlite %s rows=%ld crc=%08x\n", label, rows, crc);
    return crc;
}

int main(int argc, char **argv)
{
    long orders = real_scaled(ORDERS, real_scale(argc, argv), 100);
    long customers = orders / 20 + 1, products = 500;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        die("open");
    exec("PRAGMA temp_store = MEMORY;"
         "CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT, city TEXT, tier INTEGER);"
         "CREATE TABLE product(id INTEGER PRIMARY KEY, title TEXT, price REAL);"
         "CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, product INTEGER,"
         "                    qty INTEGER, day INTEGER, note TEXT);");
    static const char *cities[] = {"Berlin", "Lisbon", "Osaka", "Quito", "Nairobi", "Oslo",
                                   "Perth", "Lima", "Hanoi", "Tunis"};
    static const char *adj[] = {"red", "small", "heavy", "quiet", "bright", "plain", "fast"};
    static const char *noun[] = {"lamp", "chair", "kettle", "drill", "rope", "clock", "pen"};
    uint64_t seed = 7;
    sqlite3_stmt *st;
    char text[64];

    exec("BEGIN");
    if (sqlite3_prepare_v2(db, "INSERT INTO customer VALUES(?,?,?,?)", -1, &st, NULL))
        die("prepare");
    for (long i = 1; i <= customers; i++) {
        snprintf(text, sizeof text, "cust%06ld-%u", i, (unsigned)(real_lcg(&seed) % 1000));
        sqlite3_bind_int64(st, 1, i);
        sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, cities[real_lcg(&seed) % 10], -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, (int)(real_lcg(&seed) % 4));
        if (sqlite3_step(st) != SQLITE_DONE)
            die("insert customer");
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(db, "INSERT INTO product VALUES(?,?,?)", -1, &st, NULL))
        die("prepare");
    for (long i = 1; i <= products; i++) {
        snprintf(text, sizeof text, "%s %s %ld", adj[real_lcg(&seed) % 7],
                 noun[real_lcg(&seed) % 7], i);
        sqlite3_bind_int64(st, 1, i);
        sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 3, (double)(real_lcg(&seed) % 10000) / 100.0);
        if (sqlite3_step(st) != SQLITE_DONE)
            die("insert product");
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(db, "INSERT INTO orders(customer, product, qty, day, note)"
                               " VALUES(?,?,?,?,?)", -1, &st, NULL))
        die("prepare");
    for (long i = 1; i <= orders; i++) {
        sqlite3_bind_int64(st, 1, 1 + (long)(real_lcg(&seed) % (uint64_t)customers));
        sqlite3_bind_int64(st, 2, 1 + (long)(real_lcg(&seed) % (uint64_t)products));
        sqlite3_bind_int(st, 3, 1 + (int)(real_lcg(&seed) % 9));
        sqlite3_bind_int(st, 4, (int)(real_lcg(&seed) % 365));
        if (real_lcg(&seed) % 4 == 0) {
            snprintf(text, sizeof text, "gift wrap %u", (unsigned)(real_lcg(&seed) % 50));
            sqlite3_bind_text(st, 5, text, -1, SQLITE_TRANSIENT);
        } else {
            sqlite3_bind_null(st, 5);
        }
        if (sqlite3_step(st) != SQLITE_DONE)
            die("insert order");
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    exec("COMMIT");
    exec("CREATE INDEX orders_customer ON orders(customer);"
         "CREATE INDEX orders_day ON orders(day, product);"
         "CREATE INDEX customer_city ON customer(city, tier);");

    printf("sqlite customers=%ld products=%ld orders=%ld\n", customers, products, orders);
    query("city_revenue",
          "SELECT c.city, count(*), sum(o.qty), printf('%.2f', sum(o.qty * p.price))"
          " FROM orders o JOIN customer c ON c.id = o.customer JOIN product p ON p.id = o.product"
          " GROUP BY c.city ORDER BY sum(o.qty * p.price) DESC, c.city", 3);
    query("top_customers",
          "SELECT c.name, count(*) AS n, sum(o.qty) AS q FROM customer c"
          " JOIN orders o ON o.customer = c.id GROUP BY c.id ORDER BY q DESC, c.id LIMIT 20", 2);
    query("monthly",
          "SELECT o.day / 30 AS month, count(DISTINCT o.customer), avg(o.qty), max(p.price)"
          " FROM orders o JOIN product p ON p.id = o.product WHERE o.day BETWEEN 10 AND 300"
          " GROUP BY month ORDER BY month", 0);
    query("gifts",
          "SELECT note, count(*), min(day) FROM orders WHERE note LIKE 'gift wrap 1%'"
          " GROUP BY note ORDER BY note", 0);
    query("above_city_avg",
          "SELECT count(*) FROM customer c WHERE c.tier >= 2 AND (SELECT sum(qty) FROM orders"
          " WHERE customer = c.id) > (SELECT avg(n) FROM (SELECT sum(qty) AS n FROM orders"
          " GROUP BY customer))", 1);
    exec("UPDATE product SET price = round(price * 1.1, 2) WHERE title LIKE 'red %';"
         "DELETE FROM orders WHERE qty = 1 AND day % 7 = 0;");
    query("after_update",
          "SELECT p.title, sum(o.qty), printf('%.2f', sum(o.qty * p.price)) FROM product p"
          " JOIN orders o ON o.product = p.id GROUP BY p.id ORDER BY 3 DESC, p.id LIMIT 50", 2);
    query("count", "SELECT count(*), sum(qty), total(length(note)) FROM orders", 1);
    sqlite3_close(db);
    return 0;
}
