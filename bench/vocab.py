"""Shared vocabulary of the benchmark corpus and pattern sets.

Both `gen_corpus.py` (which writes lines using these hosts, users, paths, exceptions...) and
`gen_patterns.py` (which writes the rules an on-call engineer would write against them) import
this module, so the rules hit the corpus at a known, realistic rate. Everything here is derived
from a fixed seed: importing it twice gives the same lists.
"""

import random

_rng = random.Random("dingtail-bench-vocab-v1")


def _ip_private(rng):
    kind = rng.random()
    if kind < 0.5:
        return f"10.{rng.randrange(0, 16)}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"
    if kind < 0.75:
        return f"172.{rng.randrange(16, 32)}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"
    return f"192.168.{rng.randrange(0, 64)}.{rng.randrange(1, 255)}"


def _ip_public(rng):
    while True:
        a = rng.randrange(1, 224)
        if a not in (10, 127, 172, 192):
            return f"{a}.{rng.randrange(0, 256)}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"


#: Clients of the web tier: mostly internal (behind a load balancer), some public.
CLIENT_IPS = [_ip_private(_rng) for _ in range(1500)] + [_ip_public(_rng) for _ in range(1500)]
#: Addresses that scan and brute-force (sshd failures, /wp-login.php, /.env ...).
ATTACKER_IPS = [_ip_public(_rng) for _ in range(400)]
#: Blocklisted addresses the rules look for: a few do appear (from ATTACKER_IPS), most do not.
BLOCKLIST_IPS = _rng.sample(ATTACKER_IPS, 60) + [_ip_public(_rng) for _ in range(700)]

#: Real accounts that log in with keys.
USERS = ["deploy", "ubuntu", "ec2-user", "jenkins", "ansible", "git", "backup", "monitor",
         "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
         "mallory", "oscar", "peggy", "trent", "victor", "walter", "wang.lei", "li.na",
         "zhang.wei", "liu.yang", "chen.jie", "yang.fan"]
#: Names brute-forcers try.
BAD_USERS = ["admin", "root", "test", "oracle", "postgres", "guest", "user", "ftpuser", "pi",
             "support", "ubnt", "hadoop", "mysql", "nagios", "tomcat", "www", "webmaster",
             "minecraft", "teamspeak", "steam", "git", "dev", "devops", "odoo", "es", "kafka",
             "redis", "zabbix", "vagrant", "demo", "user1", "test1", "administrator", "sysadmin"]

HOSTS = [f"web-{i:02d}" for i in range(1, 9)] + [f"app-{i:02d}" for i in range(1, 7)] + \
        ["db-01", "db-02", "cache-01", "lb-01", "bastion"]

SERVICES = ["checkout", "cart", "catalog", "payments", "orders", "users", "search", "inventory",
            "shipping", "notifications", "gateway", "auth", "recommendations", "pricing"]
NAMESPACES = ["shop", "shop-staging", "payments", "platform", "monitoring", "ingress-nginx"]
NODES = [f"node-{i}" for i in range(1, 13)]

API_PATHS = [
    "/api/v1/orders", "/api/v1/orders/{id}", "/api/v1/orders/{id}/items", "/api/v1/orders/{id}/refund",
    "/api/v1/cart", "/api/v1/cart/items", "/api/v1/cart/items/{id}", "/api/v1/users/me",
    "/api/v1/users/{id}", "/api/v1/users/{id}/addresses", "/api/v1/payments/charge",
    "/api/v1/payments/{id}/capture", "/api/v1/payments/webhook", "/api/v1/catalog/products",
    "/api/v1/catalog/products/{id}", "/api/v1/catalog/categories", "/api/v2/search",
    "/api/v1/inventory/{id}", "/api/v1/shipping/quote", "/api/v1/coupons/validate", "/graphql",
    "/login", "/logout", "/oauth/token", "/oauth/authorize", "/", "/index.html", "/favicon.ico",
    "/static/js/app.{hash}.js", "/static/css/main.{hash}.css", "/static/img/logo.png",
    "/healthz", "/readyz", "/metrics", "/robots.txt", "/sitemap.xml",
]
SCANNER_PATHS = ["/wp-login.php", "/.env", "/.git/config", "/phpmyadmin/index.php", "/admin/config.php",
                 "/cgi-bin/luci", "/boaform/admin/formLogin", "/actuator/env", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
                 "/solr/admin/info/system", "/HNAP1/", "/console/login/LoginForm.jsp"]

USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.54",
    "Mozilla/5.0 (Linux; Android 14; 23127PN0CC) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "okhttp/4.12.0", "curl/8.5.0", "python-requests/2.32.3", "Go-http-client/1.1",
    "kube-probe/1.30", "Prometheus/2.54.1", "Apache-HttpClient/4.5.14 (Java/17.0.12)",
]
BAD_AGENTS = ["sqlmap/1.8.11#stable (https://sqlmap.org)", "Nikto/2.5.0", "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
              "zgrab/0.x", "Mozilla/5.0 zgrab/0.x", "python-urllib3/1.26.5", "Hello, World"]

JAVA_LOGGERS = [
    "c.e.shop.order.OrderService", "c.e.shop.order.OrderController", "c.e.shop.cart.CartService",
    "c.e.shop.payment.PaymentGatewayClient", "c.e.shop.payment.RefundService",
    "c.e.shop.inventory.StockReservationJob", "c.e.shop.user.UserRepository",
    "o.s.web.servlet.DispatcherServlet", "o.h.engine.jdbc.spi.SqlExceptionHelper",
    "com.zaxxer.hikari.pool.HikariPool", "o.a.kafka.clients.NetworkClient",
    "o.s.k.listener.KafkaMessageListenerContainer", "o.a.c.c.C.[.[.[/].[dispatcherServlet]",
    "i.g.resilience4j.circuitbreaker", "o.s.scheduling.support.TaskUtils$LoggingErrorHandler",
]
JAVA_THREADS = [f"nio-8080-exec-{i}" for i in range(1, 11)] + ["scheduling-1", "kafka-consumer-1",
                                                               "HikariPool-1 housekeeper", "main"]

#: (exception class, messages) for stack traces and ERROR lines.
EXCEPTIONS = [
    ("java.lang.NullPointerException", ['Cannot invoke "com.example.shop.order.Order.getItems()" because "order" is null',
                                        'Cannot invoke "String.length()" because "sku" is null']),
    ("java.lang.IllegalStateException", ["Order {id} is already paid", "Cart is empty"]),
    ("java.lang.IllegalArgumentException", ["quantity must be positive: -1", "Unknown currency: XBT"]),
    ("java.net.SocketTimeoutException", ["Read timed out", "connect timed out"]),
    ("java.net.ConnectException", ["Connection refused"]),
    ("java.sql.SQLTransientConnectionException", ["HikariPool-1 - Connection is not available, request timed out after 30000ms."]),
    ("org.springframework.dao.DataIntegrityViolationException", ['could not execute statement; SQL [n/a]; constraint [uk_order_no]']),
    ("org.springframework.web.client.HttpServerErrorException$ServiceUnavailable", ['503 Service Unavailable: "no healthy upstream"']),
    ("org.springframework.web.client.ResourceAccessException", ['I/O error on POST request for "http://payments:8080/charge": Read timed out']),
    ("org.apache.kafka.common.errors.TimeoutException", ["Expiring 12 record(s) for orders-3:120000 ms has passed since batch creation"]),
    ("io.github.resilience4j.circuitbreaker.CallNotPermittedException", ["CircuitBreaker 'inventory' is OPEN and does not permit further calls"]),
    ("com.fasterxml.jackson.databind.exc.InvalidFormatException", ['Cannot deserialize value of type `java.math.BigDecimal` from String "12,50"']),
    ("java.util.concurrent.RejectedExecutionException", ["Task rejected from java.util.concurrent.ThreadPoolExecutor@1b2c3d4e[Running, pool size = 200]"]),
    ("java.lang.OutOfMemoryError", ["Java heap space", "GC overhead limit exceeded"]),
    ("redis.clients.jedis.exceptions.JedisConnectionException", ["Could not get a resource from the pool"]),
]
#: Exception names rules may look for that never appear (realistic rule sets have many).
ABSENT_EXCEPTIONS = [
    "java.lang.StackOverflowError", "java.lang.ClassCastException", "java.lang.NoClassDefFoundError",
    "java.lang.ArrayIndexOutOfBoundsException", "java.util.ConcurrentModificationException",
    "javax.net.ssl.SSLHandshakeException", "java.io.FileNotFoundException", "java.lang.UnsupportedOperationException",
    "org.hibernate.LazyInitializationException", "org.hibernate.StaleObjectStateException",
    "java.util.NoSuchElementException", "java.lang.NumberFormatException", "java.nio.file.AccessDeniedException",
    "org.springframework.beans.factory.BeanCreationException", "java.lang.ExceptionInInitializerError",
    "java.security.InvalidKeyException", "javax.crypto.BadPaddingException", "java.net.UnknownHostException",
    "java.sql.SQLSyntaxErrorException", "org.postgresql.util.PSQLException", "com.mysql.cj.jdbc.exceptions.CommunicationsException",
    "java.util.concurrent.TimeoutException", "java.lang.InterruptedException", "java.io.EOFException",
]
STACK_FRAMES = [
    "com.example.shop.order.OrderService.placeOrder(OrderService.java:{n})",
    "com.example.shop.order.OrderController.create(OrderController.java:{n})",
    "com.example.shop.cart.CartService.checkout(CartService.java:{n})",
    "com.example.shop.payment.PaymentGatewayClient.charge(PaymentGatewayClient.java:{n})",
    "com.example.shop.inventory.StockReservationJob.run(StockReservationJob.java:{n})",
    "org.springframework.web.client.RestTemplate.doExecute(RestTemplate.java:{n})",
    "org.springframework.transaction.interceptor.TransactionInterceptor.invoke(TransactionInterceptor.java:{n})",
    "org.springframework.aop.framework.ReflectiveMethodInvocation.proceed(ReflectiveMethodInvocation.java:{n})",
    "org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:{n})",
    "jakarta.servlet.http.HttpServlet.service(HttpServlet.java:{n})",
    "org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:{n})",
    "com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:{n})",
    "org.hibernate.engine.jdbc.spi.SqlExceptionHelper.convert(SqlExceptionHelper.java:{n})",
    "java.base/java.net.SocketInputStream.read(SocketInputStream.java:{n})",
    "java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:{n})",
    "java.base/java.lang.Thread.run(Thread.java:{n})",
]

#: Go / JSON service error messages.
JSON_ERRORS = [
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
    "context deadline exceeded",
    "dial tcp {ip}:5432: connect: connection refused",
    "redis: connection pool timeout",
    "rpc error: code = Unavailable desc = connection error: desc = \\\"transport: Error while dialing: dial tcp {ip}:9090: i/o timeout\\\"",
    "rpc error: code = DeadlineExceeded desc = context deadline exceeded",
    "failed to publish event: kafka: client has run out of available brokers to talk to",
    "payment declined by provider: insufficient_funds",
    "panic recovered: runtime error: invalid memory address or nil pointer dereference",
    "x509: certificate has expired or is not yet valid",
    "failed to acquire lock order:{id}: lock timeout",
    "too many open files",
]
JSON_WARNS = [
    "slow request", "retrying request", "cache miss storm detected", "rate limited by upstream",
    "deprecated API version used", "high GC pause", "connection reset by peer, reconnecting",
]
JSON_INFOS = [
    "request completed", "request completed", "request completed", "order created", "cart updated",
    "user logged in", "payment authorized", "cache refreshed", "consumer group rebalanced",
    "health check ok", "config reloaded", "job finished",
]
